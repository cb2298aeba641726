"""``irad bench``: purification cost of defenses (ms per image, images per second, peak memory)."""

from __future__ import annotations

import click

from .common import common_options, friendly_errors


@click.command("bench")
@click.option("--defense", "defenses", multiple=True, default=("disco", "irad"), show_default=True)
@click.option("--batch-sizes", default="1,64", show_default=True, help="Comma-separated batch sizes.")
@click.option("--image-size", type=click.IntRange(min=4), default=32, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@common_options
@friendly_errors
def bench(defenses, batch_sizes, image_size, repeats, device, seed, batch_size, data_root) -> None:
    """Time defenses on random images, after a warm-up, side by side in one run."""
    from ..benchmarking import time_module
    from ..defenses import load_defense
    from ..utils import resolve_device, seed_everything

    seed_everything(seed)
    dev = resolve_device(device)
    sizes = [int(b) for b in batch_sizes.split(",") if b]
    click.echo(f"device: {dev}  image: 3x{image_size}x{image_size}")
    click.echo(f"{'defense':<16}{'batch':>7}{'ms/img':>12}{'img/s':>12}{'peak MiB':>10}")
    for name in defenses:
        module = load_defense(name, device=dev)
        for bs in sizes:
            r = time_module(module, bs, image_size, dev, repeats)
            click.echo(f"{name:<16}{bs:>7}{r['ms_per_image']:>12.3f}{r['images_per_s']:>12.1f}"
                       f"{r['peak_mib']:>10.0f}")
