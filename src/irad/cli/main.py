"""Entry point of the ``irad`` command."""

from __future__ import annotations

import click

from .. import __version__
from .train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="irad")
def cli() -> None:
    """irad: test-time adversarial defense by implicit-representation-driven image resampling (IRAD).

    All commands share --device, --seed, --batch-size and --data.
    """


cli.add_command(train)


def main() -> None:
    cli(prog_name="irad")
