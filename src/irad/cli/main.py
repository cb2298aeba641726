"""Entry point of the ``irad`` command."""

from __future__ import annotations

import click

from .. import __version__
from .analyze import analyze_cmd
from .bench import bench
from .common import refuse_under_torchrun
from .evaluate import evaluate_cmd
from .listing import list_cmd
from .purify import purify
from .train import train
from .weights_cmd import weights_group


def load_plugins(specs: list[str]) -> None:
    """Import each plugin: a module name (``mypkg.defenses``) or a ``.py`` file, whose import registers parts with
    the registries (``@DEFENSES.register(...)`` and the like)."""
    import hashlib
    import importlib
    import importlib.util
    import os
    import sys
    from pathlib import Path

    if os.getcwd() not in sys.path:  # `irad --plugin my_defenses` finds my_defenses.py in the working directory
        sys.path.append(os.getcwd())
    for spec in specs:
        try:
            if spec.endswith(".py"):
                path = Path(spec)
                if not path.is_file():
                    raise click.ClickException(f"plugin file {spec!r} does not exist")
                path = path.resolve()
                name = f"irad_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
                if name in sys.modules:  # imported already in this process (registering twice is an error)
                    continue
                module_spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[name] = module
                try:
                    module_spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
            else:
                importlib.import_module(spec)
        except click.ClickException:
            raise
        except Exception as exc:  # the plugin's own error, shown as one line
            raise click.ClickException(f"plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="irad")
@click.option("--plugin", "plugins", multiple=True,
              help="Import this module (or .py file) first, e.g. one that registers your defense with "
                   "@DEFENSES.register; repeatable; $IRAD_PLUGINS (separated by spaces) is imported too.")
@click.pass_context
def cli(ctx: click.Context, plugins: tuple[str, ...]) -> None:
    """irad: test-time adversarial defense by implicit-representation-driven image resampling (IRAD).

    The commands that run models share --device, --seed, --batch-size and --data (purify and bench, which read
    no dataset, refuse --data rather than ignore it).

    Example: irad --plugin my_defenses.py evaluate --defense none --defense my-blur:sigma=0.8

    Scaling out: `torchrun --nproc-per-node N -m irad train implicit|samplenet|classifier|pairs ...` and
    `torchrun ... -m irad evaluate ...` run on N processes (see the README's "Scaling out").
    """
    import os

    refuse_under_torchrun(ctx)
    load_plugins(os.environ.get("IRAD_PLUGINS", "").split() + list(plugins))


cli.add_command(train)
cli.add_command(purify)
cli.add_command(evaluate_cmd)
cli.add_command(analyze_cmd)
cli.add_command(list_cmd)
cli.add_command(bench)
cli.add_command(weights_group)


def main() -> None:
    cli(prog_name="irad")
