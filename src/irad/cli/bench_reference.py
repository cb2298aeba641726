"""The argparse command line of the reference benchmark (``benchmarks/bench_irad.py``; ``irad bench --reference``
builds its arguments)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..bench.reference import FP32_TOLERANCE, format_markdown, parse_list, run_benchmark
from ..utils.io import atomic_save_json


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench_irad.py",
        description="Check irad's IRAD against a straightforward reference implementation (shared random weights) "
                    "and time both side by side.")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--batch-sizes", default=None,
                   help="comma-separated (default 1,64,200 on CPU, 1,64,200,1000 on CUDA)")
    p.add_argument("--image-size", type=int, default=32, help="square image side for the comparison (default 32)")
    p.add_argument("--precisions", default=None,
                   help="fp32 and/or bf16 autocast (default fp32 on CPU, fp32,bf16 on CUDA)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per measurement, median (default 3)")
    p.add_argument("--image-sizes", default=None,
                   help="also time irad's IRAD at these sizes, e.g. 32,64,128,224 (default: off)")
    p.add_argument("--size-batch", type=int, default=8, help="batch size for --image-sizes (default 8)")
    p.add_argument("--weights", default=None,
                   help="an IRAD weight file to use instead of random weights of the paper's architecture")
    p.add_argument("--n-resblocks", type=int, default=16)
    p.add_argument("--n-feats", type=int, default=64)
    p.add_argument("--hidden", default="256,256,256,256", help="MLP hidden widths (default 256,256,256,256)")
    p.add_argument("--samplenet-std", type=float, default=0.5,
                   help="std of SampleNet's random last layer; the default 0.5 gives shifts of ~0.45 px on "
                        "average, so queries cross pixel boundaries (0.01 gives ~0.01 px)")
    p.add_argument("--max-queries", type=int, default=None,
                   help="split the reference's queries in chunks of this many per image batch (default: none)")
    p.add_argument("--check-batch", type=int, default=4, help="images for the agreement check (default 4)")
    p.add_argument("--strict-fp32", action="store_true",
                   help="time fp32 with TF32 off (default: PyTorch's settings, TF32 for cuDNN convolutions); the "
                        "agreement check always runs without TF32")
    p.add_argument("--training", action="store_true",
                   help="also time one training step of the implicit representation and of SampleNet")
    p.add_argument("--train-batch", type=int, default=None, help="batch for --training (default 16 CPU, 128 CUDA)")
    p.add_argument("--train-queries", type=int, default=None,
                   help="pixels queried per image for --training (default all, as in the paper)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_path", default=None, help="also write the results as JSON here")
    return p


def run_from_args(args: argparse.Namespace, log=print) -> int:
    precisions = parse_list(args.precisions, str)
    bad = [p for p in precisions if p not in ("fp32", "bf16")]
    if bad:
        raise SystemExit(f"unknown precision(s) {bad}; use fp32 and/or bf16")
    result = run_benchmark(
        weights=args.weights, device=args.device, batch_sizes=parse_list(args.batch_sizes),
        image_size=args.image_size, precisions=precisions, repeats=args.repeats,
        image_sizes=parse_list(args.image_sizes), size_batch=args.size_batch, seed=args.seed,
        n_resblocks=args.n_resblocks, n_feats=args.n_feats, hidden=tuple(parse_list(args.hidden)),
        samplenet_std=args.samplenet_std, max_queries=args.max_queries, check_batch=args.check_batch,
        strict=args.strict_fp32, training=args.training, train_batch=args.train_batch,
        train_queries=args.train_queries, log=log)
    log("")
    log(format_markdown(result))
    if args.json_path:
        atomic_save_json(result, args.json_path)
        log(f"\nwrote {args.json_path}")
    bad_training = [r["stage"] for r in result["training_rows"] if not r["check"]["ok"]]
    if bad_training:
        log(f"\nERROR: irad's and the reference's training gradients disagree: {', '.join(bad_training)}")
        return 1
    if not result["check"]["ok"]:
        log(f"\nERROR: irad and the reference disagree by more than {FP32_TOLERANCE:g}", )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_from_args(build_parser().parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
