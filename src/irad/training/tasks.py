"""The five training tasks of the implicit representation (§4.2, Table 7).

Each task turns a clean batch (and, for adversarial denoising, its stored adversarial version) into an input image,
a target image, the pixel-unit coordinates in the input at which each target pixel is queried, and the cell size.
The loss is L1(target, φ(coords)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..reconstruction.base import pixel_grid
from ..registry import Registry


@dataclass
class TaskBatch:
    inputs: torch.Tensor  # N x 3 x h x w, what the encoder sees
    targets: torch.Tensor  # N x 3 x H x W, what φ must reproduce
    coords: torch.Tensor  # N x H x W x 2, pixel units of the input, one per target pixel
    cell: torch.Tensor | None  # N x H x W x 2 (input pixels per target pixel), None = 1


def _same_size(inputs: torch.Tensor, targets: torch.Tensor) -> TaskBatch:
    n, _, h, w = targets.shape
    return TaskBatch(inputs, targets, pixel_grid(n, h, w, device=targets.device), None)


class Task:
    needs_pairs = False

    def __call__(self, clean: torch.Tensor, adv: torch.Tensor | None, gen: torch.Generator) -> TaskBatch:
        raise NotImplementedError


TASKS: Registry[Task] = Registry("task")


@TASKS.register("clean2clean")
class Clean2Clean(Task):
    """Reconstruct the clean image from itself at the pixel centres."""

    def __call__(self, clean, adv, gen):
        return _same_size(clean, clean)


@TASKS.register("super-resolution")
class SuperResolution(Task):
    """Downsample by a random factor in [1, max_scale] (bicubic, antialiased) and predict the full-size image."""

    def __init__(self, max_scale: float = 3.0) -> None:
        self.max_scale = max_scale

    def __call__(self, clean, adv, gen):
        n, _, h, w = clean.shape
        s = 1.0 + (self.max_scale - 1.0) * torch.rand((), generator=gen).item()
        lh, lw = max(4, round(h / s)), max(4, round(w / s))
        low = F.interpolate(clean, size=(lh, lw), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        grid = pixel_grid(n, h, w, device=clean.device)
        scale = torch.tensor([lh / h, lw / w], device=clean.device)
        coords = (grid + 0.5) * scale - 0.5
        return TaskBatch(low, clean, coords, scale.expand(n, h, w, 2))


@TASKS.register("inpainting")
class Inpainting(Task):
    """Zero a random rectangle (side 25-50 % of the image) and restore the whole image ("Restoration")."""

    def __call__(self, clean, adv, gen):
        n, _, h, w = clean.shape
        masked = clean.clone()
        for i in range(n):
            mh = int(torch.randint(h // 4, h // 2 + 1, (), generator=gen))
            mw = int(torch.randint(w // 4, w // 2 + 1, (), generator=gen))
            top = int(torch.randint(0, h - mh + 1, (), generator=gen))
            left = int(torch.randint(0, w - mw + 1, (), generator=gen))
            masked[i, :, top:top + mh, left:left + mw] = 0.0
        return _same_size(masked, clean)


@TASKS.register("gaussian-denoising")
class GaussianDenoising(Task):
    """Add N(0, σ²) noise (σ = 8/255 by default, the size of the adversarial budget) and remove it."""

    def __init__(self, sigma: float = 8 / 255) -> None:
        self.sigma = sigma

    def __call__(self, clean, adv, gen):
        noise = torch.randn(clean.shape, generator=gen).to(clean.device) * self.sigma
        return _same_size((clean + noise).clamp(0, 1), clean)


@TASKS.register("adversarial-denoising")
class AdversarialDenoising(Task):
    """Map PGD adversarial examples (from `irad train pairs`) back to their clean images (the paper's choice)."""

    needs_pairs = True

    def __call__(self, clean, adv, gen):
        if adv is None:
            raise ValueError("adversarial denoising needs adversarial pairs (--pairs DIR)")
        return _same_size(adv, clean)


def sample_queries(batch: TaskBatch, queries: int | None, gen: torch.Generator) -> TaskBatch:
    """Keep ``queries`` random target pixels per image (LIIF's sample_q); None keeps all."""
    n, _, h, w = batch.targets.shape
    if queries is None or queries >= h * w:
        return batch
    idx = torch.stack([torch.randperm(h * w, generator=gen)[:queries] for _ in range(n)]).to(batch.targets.device)
    tgt = batch.targets.reshape(n, 3, h * w).gather(2, idx.unsqueeze(1).expand(n, 3, queries)).unsqueeze(-1)
    pick = lambda t: t.reshape(n, h * w, 2).gather(1, idx.unsqueeze(-1).expand(n, queries, 2)).unsqueeze(2)  # noqa
    return TaskBatch(batch.inputs, tgt, pick(batch.coords), None if batch.cell is None else pick(batch.cell))


def take(batch: TaskBatch, share: slice) -> TaskBatch:
    """The images ``share`` of a batch (a process's part of it under torchrun; everything for ``slice(None)``)."""
    return TaskBatch(batch.inputs[share], batch.targets[share], batch.coords[share],
                     None if batch.cell is None else batch.cell[share])
