"""Entry point of the ``irad`` command."""

from __future__ import annotations

import click

from .. import __version__
from .bench import bench
from .evaluate import evaluate_cmd
from .listing import list_cmd
from .purify import purify
from .train import train
from .weights_cmd import weights_group


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="irad")
def cli() -> None:
    """irad: test-time adversarial defense by implicit-representation-driven image resampling (IRAD).

    The commands that run models share --device, --seed, --batch-size and --data (purify and bench, which read
    no dataset, refuse --data rather than ignore it).
    """


cli.add_command(train)
cli.add_command(purify)
cli.add_command(evaluate_cmd)
cli.add_command(list_cmd)
cli.add_command(bench)
cli.add_command(weights_group)


def main() -> None:
    cli(prog_name="irad")
