"""``irad bench``: purification cost of defenses (ms per image, images per second, peak memory).

``irad bench --reference`` instead checks irad's IRAD against a straightforward reference implementation of the
paper (shared random weights, or ``--weights``) and times both side by side (``irad.bench.reference``,
the same as ``benchmarks/bench_irad.py``)."""

from __future__ import annotations

import click
from click.core import ParameterSource

from .common import common_options, friendly_errors


#: options of the comparison with the reference implementation (``irad.bench.reference``)
REFERENCE_ONLY = ("weights", "precisions", "image_sizes", "strict_fp32", "json_path", "training", "train_batch",
                  "train_queries")


def _given(ctx: click.Context, names: tuple[str, ...]) -> list[str]:
    """The options among ``names`` (parameter names) set on the command line or through the environment."""
    defaults = (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None)
    return [p.opts[0] for p in ctx.command.params
            if p.name in names and ctx.get_parameter_source(p.name) not in defaults]


def check_options(ctx: click.Context, reference: bool, training: bool, image_sizes: str | None) -> None:
    """Refuse the options the chosen mode would ignore, naming them and what they need."""
    rules = [(("data_root",), "irad bench times random images, so --data is not used; drop it")]
    if not reference:
        rules.append((REFERENCE_ONLY + ("batch_size",), "only apply with --reference (the comparison with the "
                      "reference implementation); add --reference or drop them (defense timings take their batch "
                      "sizes from --batch-sizes)"))
    else:
        rules.append((("defenses",), "--reference times irad's IRAD and DISCO, not --defense specs; drop --defense"))
        if not training:
            rules.append((("train_batch", "train_queries"), "only apply with --training; add --training or drop them"))
        if not image_sizes:
            rules.append((("batch_size",), "with --reference sets the batch of --image-sizes only; add --image-sizes "
                          "or drop it"))
    for names, why in rules:
        given = _given(ctx, names)
        if given:
            raise click.UsageError(f"{', '.join(given)}: {why}")


def _positive_ints(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check a comma-separated list of positive integers (kept as text: the reference benchmark parses it)."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items or not all(v.isdigit() and int(v) > 0 for v in items):
        raise click.BadParameter(f"{value!r} is not a comma-separated list of positive integers, e.g. 1,64,200")
    return ",".join(items)


@click.command("bench")
@click.option("--defense", "defenses", multiple=True, default=("disco", "irad"), show_default=True,
              help="Defense spec(s), e.g. irad, diffpure:t_star=0.02,steps=20.")
@click.option("--batch-sizes", default=None, callback=_positive_ints,
              help="Comma-separated batch sizes [default: 1,64; with --reference: 1,64,200 on CPU, "
                   "1,64,200,1000 on CUDA].")
@click.option("--image-size", type=click.IntRange(min=4), default=32, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--reference", is_flag=True,
              help="Compare irad's IRAD and DISCO with a straightforward reference implementation (agreement "
                   "check, then speed side by side).")
@click.option("--weights", default=None,
              help="With --reference: IRAD weight file (default: random weights of the paper's architecture).")
@click.option("--precisions", default=None, help="With --reference: fp32 and/or bf16 [default: fp32, +bf16 on CUDA].")
@click.option("--image-sizes", default=None, callback=_positive_ints,
              help="With --reference: also time IRAD at these image sizes, e.g. 32,64,128,224 (batch: --batch-size, "
                   "default 8).")
@click.option("--strict-fp32", is_flag=True,
              help="With --reference: time fp32 without TF32 (the agreement check never uses TF32).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="With --reference: write the results as JSON here.")
@click.option("--training", is_flag=True,
              help="With --reference: also time one training step of the implicit representation and of SampleNet "
                   "(images/s, after a loss and gradient agreement check).")
@click.option("--train-batch", type=click.IntRange(min=1), default=None,
              help="With --training: batch size [default: 16 on CPU, 128 on CUDA].")
@click.option("--train-queries", type=click.IntRange(min=1), default=None,
              help="With --training: pixels queried per image [default: all, as in the paper].")
@common_options(data=False)
@friendly_errors
def bench(defenses, batch_sizes, image_size, repeats, reference, weights, precisions, image_sizes, strict_fp32,
          json_path, training, train_batch, train_queries, device, seed, batch_size, data_root) -> None:
    """Time defenses on random images, after a warm-up, side by side in one run."""
    check_options(click.get_current_context(), reference, training, image_sizes)
    if reference:
        from .bench_reference import build_parser, run_from_args

        argv = ["--device", device, "--image-size", str(image_size), "--repeats", str(repeats), "--seed", str(seed)]
        for flag, value in (("--batch-sizes", batch_sizes), ("--weights", weights), ("--precisions", precisions),
                            ("--image-sizes", image_sizes), ("--json", json_path),
                            ("--size-batch", batch_size), ("--train-batch", train_batch),
                            ("--train-queries", train_queries)):
            if value is not None:
                argv += [flag, str(value)]
        if strict_fp32:
            argv.append("--strict-fp32")
        if training:
            argv.append("--training")
        status = run_from_args(build_parser().parse_args(argv), log=click.echo)
        if status:
            raise click.exceptions.Exit(status)
        return

    import torch

    from ..bench.timing import device_name, time_module
    from ..evaluation.config import load_defense_spec
    from ..utils import resolve_device, seed_everything

    seed_everything(seed)
    dev = resolve_device(device)
    sizes = [int(b) for b in (batch_sizes or "1,64").split(",") if b]
    click.echo(f"device: {device_name(dev)} [{dev}]  torch {torch.__version__}  image: 3x{image_size}x{image_size}"
               f", random [0, 1] batches")
    click.echo(f"each row: one warm-up call, then the median of {repeats} timed call(s) in inference mode; peak MiB: "
               + ("the largest CUDA memory allocated during the warm-up call" if dev.type == "cuda" else
                  "the process's peak resident memory during the warm-up call (includes its baseline)"))
    width = max(16, *(len(d) + 2 for d in defenses))
    click.echo(f"{'defense':<{width}}{'batch':>7}{'ms/img':>12}{'img/s':>12}{'peak MiB':>10}")
    for spec in defenses:
        module = load_defense_spec(spec, device=dev)
        for bs in sizes:
            r = time_module(module, bs, image_size, dev, repeats)
            click.echo(f"{spec:<{width}}{bs:>7}{r['ms_per_image']:>12.3f}{r['images_per_s']:>12.1f}"
                       f"{r['peak_mib']:>10.0f}")
