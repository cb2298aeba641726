"""``irad weights ...``: import third-party checkpoints, verify installed weight files."""

from __future__ import annotations

import click

from .common import friendly_errors


@click.group("weights")
def weights_group() -> None:
    """Manage named pretrained weights (shipped, cached, or imported)."""


@weights_group.command("import")
@click.argument("name")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Target folder [the cache dir].")
@friendly_errors
def import_cmd(name: str, source: str, out: str | None) -> None:
    """Install registered weights NAME from the file SOURCE, verified by sha256 before anything is written.

    SOURCE is converted to safetensors (a third-party original is first checked against the catalogue's checksum
    of the original) and the result must have the catalogue's sha256; weights the catalogue keeps in their
    original format (resnet18-autoattack: pyautoattack's model_test.pt, otherwise read in place from the
    installed pyautoattack package) are copied unchanged after the same check. A file that does not verify is
    refused."""
    from ..weights import import_weights

    click.echo(f"wrote {import_weights(name, source, out)}")


@weights_group.command("verify")
@friendly_errors
def verify_cmd() -> None:
    """Locate every registered weight file and verify its sha256."""
    from ..errors import WeightsError
    from ..weights import WEIGHTS, resolve_weights

    failed = 0
    for name in WEIGHTS.names():
        try:
            _, path = resolve_weights(name)
            click.echo(f"ok       {name:<26} {path}")
        except WeightsError as exc:
            failed += 1
            click.echo(f"missing  {name:<26} {exc}")
    if failed:
        raise SystemExit(1)
