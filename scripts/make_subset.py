"""Write a smaller CIFAR-style train.npz that keeps the validation split intact (for a GPU call's 64 MiB carry).

    python scripts/make_subset.py SRC/train.npz OUT_DIR/cifar10/train.npz --train 10000 [--val-size 5000]

The output holds the first ``--train`` training images followed by the last ``--val-size`` images of the source,
so irad's default split (validation = the last 5,000 images) selects the same validation images as the full file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--train", type=int, required=True)
    ap.add_argument("--val-size", type=int, default=5000)
    a = ap.parse_args()
    with np.load(a.src) as f:
        images, labels = f["images"], f["labels"]
    if a.train + a.val_size > len(images):
        raise SystemExit(f"{a.src} has only {len(images)} images")
    keep = np.r_[0:a.train, len(images) - a.val_size:len(images)]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(a.out, images=images[keep], labels=labels[keep])
    print(f"wrote {a.out}: {len(keep)} images ({a.train} train + {a.val_size} val)")


if __name__ == "__main__":
    main()
