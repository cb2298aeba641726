"""Would ``torch.compile`` speed up irad's IRAD on CPU? A probe of the encoder, kept because its answer was no
(1.004x and 0.995x on the 2-core CPU, same features to the bit; ``docs/bench/compile-cpu.md``).

The EDSR encoder (33 3x3 convolutions of 64 features) is about half of what irad's IRAD computes on CPU, and it
already runs near this machine's peak in oneDNN. Inductor with ``freezing`` fuses each convolution with its ReLU /
residual addition and pre-packs the weights. This script compiles the encoder of a random-weight IRAD of the paper's
architecture, checks it gives the same features, and times, side by side in one process (timed calls interleaved,
see ``irad.bench.timing.time_side_by_side``): the encoder eager vs compiled, and the whole IRAD purification with
the eager vs the compiled encoder. The compile time (first call) is printed too.

Compiled modules here serve inference only (``freezing`` folds the weights in as constants), so attacks that
differentiate through the purifier could not use them.

    python benchmarks/bench_compile.py [--batch-size 64] [--repeats 7]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch

from irad.bench.timing import time_side_by_side
from irad.reference import load_pair, make_random_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        weights = make_random_weights(Path(tmp) / "irad.safetensors", samplenet_std=0.5, seed=0)
        eager = load_pair(weights, device)["irad"].eval()
    compiled = copy.deepcopy(eager)
    encoder = eager.reconstruction.encoder
    x = torch.rand(args.batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        fast_encoder = torch.compile(copy.deepcopy(encoder), options={"freezing": True})
        t0 = time.perf_counter()
        features = fast_encoder(x)
        compile_s = time.perf_counter() - t0
        compiled.reconstruction.encoder = fast_encoder
        feature_diff = float((features - encoder(x)).abs().max())
        output_diff = float((compiled(x) - eager(x)).abs().max())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, 32 x 32, fp32")
    print(f"compile (first call): {compile_s:.1f} s; max |compiled - eager|: features {feature_diff:.2e}, "
          f"purified images {output_diff:.2e}")
    for label, modules in (("encoder", {"eager": encoder, "compiled": fast_encoder}),
                           ("IRAD purification", {"eager": eager, "compiled": compiled})):
        timed = time_side_by_side(modules, x, device, repeats=args.repeats)
        a, b = timed["eager"]["ms_per_image"], timed["compiled"]["ms_per_image"]
        print(f"{label}: eager {a:.2f} ms/img, compiled encoder {b:.2f} ms/img, speed-up {a / b:.3f}x")


if __name__ == "__main__":
    main()
