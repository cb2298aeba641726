"""``irad purify IN OUT``: purify image files or an .npz of images with a defense."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch

from .common import common_options, friendly_errors

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


@click.command("purify")
@click.argument("inputs", type=click.Path(exists=True), nargs=-1, required=True)
@click.argument("output", type=click.Path())
@click.option("--defense", default="irad", help="Defense name (see `irad list defenses`).")
@click.option("--dataset", default="cifar10", help="Which trained weights to use.")
@click.option("--weights", default=None, help="Weight file or registered name for the defense.")
@common_options
@friendly_errors
def purify(inputs, output, defense, dataset, weights, device, seed, batch_size, data_root) -> None:
    """Purify INPUTS (image files, a folder of images, or one .npz with 'images') into OUTPUT.

    OUTPUT is a folder for image inputs (same file names, PNG) or an .npz for an .npz input.
    """
    from ..data.datasets import read_npz
    from ..data.images import read_image, to_uint8, write_image
    from ..defenses import load_defense
    from ..errors import InputError
    from ..utils import atomic_write, resolve_device, seed_everything

    seed_everything(seed)
    dev = resolve_device(device)
    kwargs = {"weights": weights} if weights else {}
    module = load_defense(defense, dataset=dataset, device=dev, **kwargs)
    bs = batch_size or 64

    def run(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([module(batch[i:i + bs].to(dev)).cpu() for i in range(0, len(batch), bs)])

    paths = [Path(p) for p in inputs]
    if len(paths) == 1 and paths[0].suffix == ".npz":
        if Path(output).suffix != ".npz":
            raise InputError(f"an .npz input needs an .npz OUTPUT, got {output!r}")
        ds = read_npz(paths[0], "input")
        x, y = ds.tensors()
        out = to_uint8(run(x))
        with atomic_write(output) as fh:
            np.savez(fh, images=out, labels=y.numpy())
        click.echo(f"purified {len(out)} images -> {output}")
        return
    files: list[Path] = []
    for p in paths:
        files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else [p]
    if not files:
        raise InputError("no image files found in the inputs (looked for " + ", ".join(sorted(IMAGE_SUFFIXES)) + ")")
    images = [read_image(f) for f in files]  # read (and validate) everything before writing anything
    out_dir = Path(output)
    if out_dir.suffix:
        raise InputError(f"OUTPUT must be a folder for image inputs, got {output!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for f, img in zip(files, images):  # one at a time: images may differ in size
        write_image(run(img.unsqueeze(0))[0], out_dir / f"{f.stem}.png")
    click.echo(f"purified {len(files)} images -> {out_dir}")
