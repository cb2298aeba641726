"""Training throughput in 1 vs N processes (torchrun, gloo on CPU): images/s of ``irad train implicit``.

Runs the same short training (the paper's architecture, the default recipe: 16 x 16 patches, global batch 32) in
one process with all the machine's threads and under ``torchrun --nproc-per-node N`` with threads / N each,
alternating the two (``--rounds`` times each) so that both see the same machine; prints the images/s of every run
(training steps only: ``images_seen / train_s`` of the last log record), the medians and their ratio.

The task is clean2clean (the same network, loss and step cost as adversarial denoising, without needing pairs), on
the training split of ``--data`` (CIFAR-10 as .npz or torchvision folders).

    python benchmarks/bench_distributed.py --data ../shared/data [--processes 2] [--steps 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run_once(processes: int, threads: int, steps: int, batch: int, data: str, out: Path) -> float:
    """images/s of one training run of ``steps`` steps."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
                if processes > 1 else [sys.executable])
    images = steps * batch
    cmd = [*launcher, "-m", "irad", "train", "implicit", "--task", "clean2clean", "--train-limit", str(images),
           "--epochs", "1", "--batch-size", str(batch), "--val-images", "8", "--checkpoint-every", str(steps),
           "--device", "cpu", "--data", data, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    last = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if "train_s" in line][-1]
    return last["images_seen"] / last["train_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("IRAD_DATA"), help="data folder with CIFAR-10 train")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads in all (split across processes)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not args.data:
        raise SystemExit("pass --data DIR (a folder with CIFAR-10's training images) or set IRAD_DATA")
    rates: dict[int, list[float]] = {1: [], args.processes: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for p in (1, args.processes):
                rate = run_once(p, max(1, args.threads // p), args.steps, args.batch_size, args.data,
                                Path(tmp) / f"r{r}-p{p}")
                rates[p].append(rate)
                print(f"round {r + 1}: {p} process(es) x {max(1, args.threads // p)} thread(s): {rate:.1f} images/s",
                      flush=True)
    one, many = statistics.median(rates[1]), statistics.median(rates[args.processes])
    print(f"median: 1 process {one:.1f} images/s, {args.processes} processes {many:.1f} images/s; "
          f"ratio {many / one:.2f} ({args.threads} threads in all, global batch {args.batch_size}, "
          f"{args.steps} steps, {args.rounds} alternating rounds)")


if __name__ == "__main__":
    main()
