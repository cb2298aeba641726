"""Carry CIFAR-10 training images to a GPU call in WebP-lossless packs (about 57 % of the raw size), and back.

A device call carries at most 64 MiB with the repository, so the 50,000-image training set (153.6 MB raw, 141 MB as
compressed .npz) cannot travel at once; lossless WebP (about 57 % of the raw size on CIFAR-10) makes each call carry
~1.7x more images. Decoding is checked bit-exact by sha256.

    python scripts/gpu_data.py pack ../shared/data/cifar10/train.npz gpu-c1/train-a.npz --images 0:10000
    python scripts/gpu_data.py pack ../shared/data/cifar10/train.npz gpu-c1/val.npz --images 45000:46000 --role val
    python scripts/gpu_data.py unpack gpu-data/cifar10/train.npz gpu-c1/train-a.npz gpu-c2/train-b.npz gpu-c1/val.npz

``unpack`` writes a CIFAR-style ``train.npz``: the training packs' images in canonical order, then the validation
pack's images last, so ``--val-size`` (= the number of validation images) selects exactly them.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, features


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def pack(src: str, out: str, images: str, role: str) -> None:
    with np.load(src) as f:
        n = len(f["labels"])
        try:
            start, stop = (int(v) for v in images.split(":"))
        except ValueError:
            raise SystemExit(f"--images must be START:STOP (integers), got {images!r}") from None
        if not 0 <= start < stop <= n:
            raise SystemExit(f"--images {images}: need 0 <= START < STOP <= {n} (the images in {src})")
        x, y = f["images"][start:stop], f["labels"][start:stop]
    if not features.check("webp"):
        raise SystemExit("this Pillow cannot write WebP; install a Pillow built with libwebp (the PyPI wheels are)")
    blobs = []
    for im in x:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, "WEBP", lossless=True, quality=100, method=2)  # method 2: fastest and smallest here
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, webp=np.concatenate(blobs), offsets=offsets, labels=y, shape=np.array(x.shape),
             canonical_index=np.arange(start, stop), role=np.array(role), sha256=np.array(_sha(x)))
    print(f"{out}: {len(x)} images ({role}), {offsets[-1] / 2**20:.1f} MiB, {offsets[-1] / x.nbytes:.0%} of raw")


def _decode(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    try:
        with np.load(path) as f:
            webp, off = f["webp"], f["offsets"]
            x = np.stack([np.asarray(Image.open(io.BytesIO(webp[off[i]:off[i + 1]].tobytes())).convert("RGB"))
                          for i in range(len(off) - 1)])
            labels, index, role, sha = f["labels"], f["canonical_index"], str(f["role"]), str(f["sha256"])
    except (OSError, KeyError, ValueError) as exc:  # unreadable file, missing field, undecodable image
        raise SystemExit(f"{path} is not a readable pack ({exc}); make it again with `gpu_data.py pack`") from None
    if _sha(x) != sha:
        raise SystemExit(f"{path}: decoded images differ from the packed ones (sha256 mismatch)")
    return x, labels, index, role


def unpack(out: str, packs: list[str]) -> None:
    parts = [_decode(p) for p in packs]
    train = sorted((p for p in parts if p[3] == "train"), key=lambda p: p[2][0])
    val = [p for p in parts if p[3] == "val"]
    if not train or len(val) > 1:
        raise SystemExit(f"need at least one training pack and at most one validation pack; got {len(train)} and "
                         f"{len(val)}")
    train_index = np.concatenate([p[2] for p in train])
    if np.any(np.diff(train_index) <= 0):
        raise SystemExit("the training packs overlap (an image appears twice); pack disjoint --images ranges")
    if val and np.isin(val[0][2], train_index).any():
        raise SystemExit("the validation pack shares images with the training packs; pack disjoint ranges")
    ordered = train + val
    images = np.concatenate([p[0] for p in ordered])
    labels = np.concatenate([p[1] for p in ordered])
    index = np.concatenate([p[2] for p in ordered])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, images=images, labels=labels, canonical_index=index)
    n_val = sum(len(p[0]) for p in val)
    print(f"{out}: {len(images) - n_val} training + {n_val} validation images (use --val-size {n_val})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("src")
    p.add_argument("out")
    p.add_argument("--images", required=True, help="START:STOP canonical indices")
    p.add_argument("--role", choices=["train", "val"], default="train")
    u = sub.add_parser("unpack")
    u.add_argument("out")
    u.add_argument("packs", nargs="+")
    a = ap.parse_args()
    if a.cmd == "pack":
        pack(a.src, a.out, a.images, a.role)
    else:
        unpack(a.out, a.packs)


if __name__ == "__main__":
    main()
