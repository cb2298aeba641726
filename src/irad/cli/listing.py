"""``irad list``: what is registered (classifiers, weights, defenses, attacks, datasets, tasks)."""

from __future__ import annotations

import click


#: what `irad list` shows: kind -> (module, registry); a plugin's registrations appear in these registries
REGISTRIES = {
    "classifiers": ("irad.classifiers", "CLASSIFIERS"),
    "weights": ("irad.weights", "WEIGHTS"),
    "defenses": ("irad.defenses", "DEFENSES"),
    "attacks": ("irad.attacks", "ATTACKS"),
    "threat-models": ("irad.attacks", "THREAT_MODELS"),
    "datasets": ("irad.data", "DATASETS"),
    "reconstructions": ("irad.reconstruction", "RECONSTRUCTIONS"),
    "samplers": ("irad.sampling", "SAMPLERS"),
    "tasks": ("irad.training.tasks", "TASKS"),
}


@click.command("list")
@click.argument("what", type=click.Choice(list(REGISTRIES)))
def list_cmd(what: str) -> None:
    """List registered names of one kind, with a one-line description."""
    import importlib

    from ..registry import Registry

    module, attribute = REGISTRIES[what]
    reg = getattr(importlib.import_module(module), attribute)
    if what == "weights":  # a catalogue of files, not a registry of builders
        for spec in reg.specs():
            click.echo(f"{spec.name:<28} {spec.kind} {spec.arch or ''} on {spec.dataset}: {spec.meta.get('source', '')}")
        return
    assert isinstance(reg, Registry)
    for name in reg.names():
        summary = reg.get(name).summary
        if what == "classifiers":
            from ..classifiers import pretrained_names

            found = pretrained_names(name)
            summary += f" [pretrained: {', '.join(found)}]" if found else " [no pretrained weights]"
        click.echo(f"{name:<28} {summary}")
