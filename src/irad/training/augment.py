"""Batch augmentations: random crop with padding and horizontal flip (classifiers), aligned random patches
(the implicit representation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError


def random_crop_flip(x: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image random translation by up to ``pad`` pixels (reflect padding) and random horizontal flip."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def random_crops(images: list[torch.Tensor | None], size: int,
                 generator: torch.Generator | None = None) -> list[torch.Tensor | None]:
    """The same random ``size`` x ``size`` window of image i in every tensor of ``images`` (aligned N x C x H x W
    tensors, e.g. clean and adversarial; None entries pass through), one window per image, uniform over positions."""
    ref = next(t for t in images if t is not None)
    n, _, h, w = ref.shape
    if size > min(h, w):
        raise InputError(f"crop size {size} is larger than the {h} x {w} images; use --crop <= {min(h, w)}")
    tops = torch.randint(0, h - size + 1, (n,), generator=generator).tolist()
    lefts = torch.randint(0, w - size + 1, (n,), generator=generator).tolist()
    return [None if t is None else torch.stack([t[i, :, a:a + size, b:b + size] for i, (a, b) in
                                                enumerate(zip(tops, lefts))]) for t in images]
