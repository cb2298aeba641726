"""``irad weights ...``: import third-party checkpoints, verify installed weight files."""

from __future__ import annotations

import click

from .common import friendly_errors


@click.group("weights")
def weights_group() -> None:
    """Manage named pretrained weights (shipped, cached, or imported)."""


@weights_group.command("import")
@click.argument("args", nargs=-1, required=True, metavar="[NAME] FILE")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Target folder [the cache dir].")
@friendly_errors
def import_cmd(args: tuple[str, ...], out: str | None) -> None:
    """`irad weights import NAME FILE`: install registered weights NAME from FILE, verified by sha256 before
    anything is written. `irad weights import FILE`: convert an older weight file once, in place, into one
    self-describing file (its tensors and sha256 unchanged): a file of the two-file format (FILE.safetensors +
    FILE.json) takes its sidecar's metadata, and a file without a model spec gets the one its older keys imply.

    With NAME, FILE is converted to safetensors (a third-party original is first checked against the catalogue's
    checksum of the original) and the result must have the catalogue's sha256; weights the catalogue keeps in their
    original format (resnet18-autoattack: pyautoattack's model_test.pt, otherwise read in place from the installed
    pyautoattack package) are copied unchanged after the same check. A file that does not verify is refused."""
    from pathlib import Path

    from ..weights import convert_weights, import_weights

    if len(args) > 2:
        raise click.UsageError("expected NAME FILE (registered weights) or FILE (a file to convert)")
    for path in args[-1:]:
        if not Path(path).is_file():
            raise click.BadParameter(f"file {path!r} does not exist", param_hint="FILE")
    if len(args) == 2:
        click.echo(f"wrote {import_weights(args[0], args[1], out)}")
        return
    if out is not None:
        raise click.UsageError("--out goes with NAME FILE; a file is converted in place")
    before = Path(args[0]).stat().st_mtime_ns
    path = convert_weights(args[0])
    if path.stat().st_mtime_ns == before:
        click.echo(f"{path} is already one self-describing file with its model spec: nothing to convert")
    else:
        click.echo(f"converted {path} (one file with its model spec; its tensors and sha256 unchanged)")


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
