"""``irad purify IN OUT``: purify image files or an .npz of images with a defense."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import click
import numpy as np
import torch

from ..data.images import IMAGE_SUFFIXES, from_uint8
from ..errors import InputError
from .common import common_options, friendly_errors


def _image_files(paths: list[Path]) -> list[Path]:
    """The image files INPUTS name (a folder: its images, sorted), each file once."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            entries = sorted(f for f in p.iterdir() if f.is_file())
            files += [f for f in entries if f.suffix.lower() in IMAGE_SUFFIXES]
            skipped = [f.name for f in entries if f.suffix.lower() not in IMAGE_SUFFIXES]
            if skipped:
                shown = ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
                click.echo(f"note: skipped {len(skipped)} file(s) in {str(p)!r} that are not images ({shown})",
                           err=True)
        else:
            files.append(p)
    unique: dict[Path, Path] = {}
    for f in files:
        unique.setdefault(f.resolve(), f)
    if not unique:
        raise InputError("no image files found in the inputs (looked for " + ", ".join(sorted(IMAGE_SUFFIXES))
                         + " directly inside each folder; subfolders are not searched: pass them as INPUTS, e.g. "
                           "DIR/*/)")
    return list(unique.values())


def _targets(files: list[Path], out_dir: Path) -> list[Path]:
    """OUTPUT/<stem>.png for each input, refusing inputs whose outputs would overwrite each other (same stem, also
    up to case, for case-insensitive file systems) or would overwrite an input."""
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(f.stem.casefold(), []).append(f)
    clashes = [g for g in groups.values() if len(g) > 1]
    if clashes:
        listed = "; ".join(", ".join(map(str, g)) + f" -> {g[0].stem}.png" for g in clashes)
        raise InputError(f"inputs with the same file name stem would overwrite each other in {str(out_dir)!r} "
                         f"({listed}); rename them or purify them into separate OUTPUT folders")
    targets = [out_dir / f"{f.stem}.png" for f in files]
    inputs = {f.resolve() for f in files}
    overwritten = [str(t) for t in targets if t.resolve() in inputs]
    if overwritten:
        raise InputError(f"purifying would overwrite the input file(s) {', '.join(overwritten)}; choose another "
                         f"OUTPUT folder")
    return targets


#: the smallest image side purify accepts: below it, reconstruction and resampling have too little to work with
MIN_SIDE = 4


def _check_purifiable(source: Path, image: torch.Tensor) -> None:
    h, w = image.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise InputError(f"{source} is {w} x {h} pixels: too small to purify meaningfully (at least {MIN_SIDE} x "
                         f"{MIN_SIDE}); nothing was written")


def _colour_notes(files: list[Path]) -> list[str]:
    """A note for each image that is not plain RGB: what purify does with it."""
    from PIL import Image

    notes = []
    for f in files:
        with Image.open(f) as im:
            mode = im.mode
        if mode in ("1", "L", "I", "F") or mode.startswith("I;16"):
            notes.append(f"{f.name} is grayscale (mode {mode}): purified and written as RGB")
        elif mode in ("RGBA", "LA", "PA", "P", "RGBa", "La"):
            notes.append(f"{f.name} has mode {mode}: converted to RGB (an alpha channel or palette is not kept)")
    return notes


def _purifier(defense: str, dataset: str, weights: str | None, device: str, seed: int,
              batch_size: int | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The defense (a spec such as ``jpeg:quality=20``) as a function of a CPU batch, run in batches of
    ``batch_size`` (default 64) on ``device``. Warnings of the defense's construction are shown as notes."""
    import warnings

    from ..defenses import load_defense
    from ..evaluation.config import parse_spec
    from ..utils import resolve_device, seed_everything

    seed_everything(seed)
    dev = resolve_device(device)
    name, params = parse_spec(defense)
    if weights:
        if "weights" in params:
            raise InputError(f"weights given twice, in --defense {defense!r} and --weights; keep one")
        params["weights"] = weights
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = load_defense(name, dataset=dataset, device=dev, **params)
    for w in caught:
        if "irad" in Path(w.filename).parts:  # irad's own warnings, e.g. weights of another dataset
            click.echo(f"note: {w.message}", err=True)
        else:  # another library's warning: shown as it would have been
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    bs = batch_size or 64

    def run(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([module(batch[i:i + bs].to(dev)).cpu() for i in range(0, len(batch), bs)])

    return run


@click.command("purify")
@click.argument("inputs", type=click.Path(exists=True), nargs=-1, required=True)
@click.argument("output", type=click.Path())
@click.option("--defense", default="irad", show_default=True,
              help="Defense spec: a name (see `irad list defenses`) with optional parameters, e.g. jpeg:quality=20, "
                   "bilinear-si:d=1.0, diffpure:t_star=0.02,steps=20.")
@click.option("--dataset", default="cifar10", help="Which trained weights to use.")
@click.option("--weights", default=None, help="Weight file or registered name for the defense.")
@common_options(data=False)
@friendly_errors
def purify(inputs, output, defense, dataset, weights, device, seed, batch_size, data_root) -> None:
    """Purify INPUTS (image files, a folder of images, or one .npz with 'images' and optional 'labels') into OUTPUT.

    OUTPUT is a folder for image inputs (same file names, PNG) or an .npz for an .npz input. Images are purified
    as RGB: grayscale ones come out as RGB, and an alpha channel is dropped. Files in a folder that are not images
    are skipped, with a note.

    Example: irad purify photos/ purified/ --defense irad
    """
    from ..data import read_npz_images
    from ..data.images import read_image, to_uint8, write_image
    from ..utils import atomic_write

    if data_root is not None:
        raise InputError("purify reads only its INPUTS and ignores --data; drop --data and pass the images, their "
                         "folder or the .npz as INPUTS")
    paths = [Path(p) for p in inputs]
    if len(paths) == 1 and paths[0].suffix == ".npz":
        if Path(output).suffix != ".npz":
            raise InputError(f"an .npz input needs an .npz OUTPUT, got {output!r}")
        images, labels = read_npz_images(paths[0])
        x = from_uint8(images)
        _check_purifiable(paths[0], x[0])
        out = to_uint8(_purifier(defense, dataset, weights, device, seed, batch_size)(x))
        arrays = {"images": out} if labels is None else {"images": out, "labels": labels}
        with atomic_write(output) as fh:
            np.savez(fh, **arrays)
        click.echo(f"purified {len(out)} images -> {output}")
        return
    out_dir = Path(output)
    if out_dir.suffix:
        raise InputError(f"OUTPUT must be a folder for image inputs, got {output!r}")
    files = _image_files(paths)
    targets = _targets(files, out_dir)
    images = [read_image(f) for f in files]  # read (and validate) everything before writing anything
    for f, img in zip(files, images):
        _check_purifiable(f, img)
    for note in _colour_notes(files):
        click.echo(f"note: {note}", err=True)
    run = _purifier(defense, dataset, weights, device, seed, batch_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    for target, img in zip(targets, images):  # one at a time: images may differ in size
        write_image(run(img.unsqueeze(0))[0], target)
    click.echo(f"purified {len(files)} images -> {out_dir}")
