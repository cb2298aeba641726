"""``irad list``: what is registered (classifiers, weights, defenses, attacks, datasets, tasks)."""

from __future__ import annotations

import click


@click.command("list")
@click.argument("what", type=click.Choice(["classifiers", "weights", "defenses", "attacks", "datasets",
                                           "reconstructions", "samplers", "tasks"]))
def list_cmd(what: str) -> None:
    """List registered names of one kind, with a one-line description."""
    from ..registry import Registry

    if what == "classifiers":
        from ..classifiers import CLASSIFIERS as reg
    elif what == "weights":
        from ..weights import WEIGHTS as reg
    elif what == "defenses":
        from ..defenses import DEFENSES as reg
    elif what == "attacks":
        from ..attacks import ATTACKS as reg
    elif what == "datasets":
        from ..data import DATASETS as reg
    elif what == "reconstructions":
        from ..reconstruction import RECONSTRUCTIONS as reg
    elif what == "samplers":
        from ..sampling import SAMPLERS as reg
    else:
        from ..training.tasks import TASKS as reg
    assert isinstance(reg, Registry)
    for name in reg.names():
        entry = reg.get(name)
        summary = entry.summary
        if what == "weights":
            spec = entry.factory()
            summary = f"{spec.kind} {spec.arch or ''} on {spec.dataset}: {spec.meta.get('source', '')}"
        elif what == "classifiers":
            from ..classifiers import pretrained_names

            found = pretrained_names(name)
            summary += f" [pretrained: {', '.join(found)}]" if found else " [no pretrained weights]"
        click.echo(f"{name:<28} {summary}")
