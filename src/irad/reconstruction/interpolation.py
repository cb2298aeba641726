"""Naive reconstructions of §3.2: nearest (Eq. 6) and bilinear (Eq. 5) interpolation, border-clamped.

Written with integer gathers in pixel units (not ``grid_sample``) so that integer coordinates return the input
pixels exactly: a zero shift is the identity and a whole-pixel shift is a translation, bit for bit.
"""

from __future__ import annotations

import torch

from .base import RECONSTRUCTIONS, ContinuousImage, Reconstruction


def gather_pixels(images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """images N x C x H x W, integer rows/cols N x H' x W' -> N x C x H' x W'."""
    n, c, h, w = images.shape
    index = (rows * w + cols).reshape(n, 1, -1).expand(n, c, -1)
    return images.reshape(n, c, h * w).gather(2, index).reshape(n, c, *rows.shape[1:])


class _Nearest(ContinuousImage):
    def query(self, coords: torch.Tensor, cell: torch.Tensor | None = None) -> torch.Tensor:
        h, w = self.size
        # Round half up (floor(u + 0.5)): a shift of d = 1.5 is then a clean 2-pixel translation.
        rows = torch.floor(coords[..., 0] + 0.5).clamp(0, h - 1).long()
        cols = torch.floor(coords[..., 1] + 0.5).clamp(0, w - 1).long()
        return gather_pixels(self.images, rows, cols)


class _Bilinear(ContinuousImage):
    def query(self, coords: torch.Tensor, cell: torch.Tensor | None = None) -> torch.Tensor:
        h, w = self.size
        u = coords[..., 0].to(self.images.dtype).clamp(0, h - 1)
        v = coords[..., 1].to(self.images.dtype).clamp(0, w - 1)
        r0, c0 = torch.floor(u.detach()), torch.floor(v.detach())
        fr, fc = (u - r0).unsqueeze(1), (v - c0).unsqueeze(1)
        r0, c0 = r0.long(), c0.long()
        r1, c1 = (r0 + 1).clamp(max=h - 1), (c0 + 1).clamp(max=w - 1)
        top = gather_pixels(self.images, r0, c0) * (1 - fc) + gather_pixels(self.images, r0, c1) * fc
        bottom = gather_pixels(self.images, r1, c0) * (1 - fc) + gather_pixels(self.images, r1, c1) * fc
        return top * (1 - fr) + bottom * fr


@RECONSTRUCTIONS.register("nearest")
class NearestReconstruction(Reconstruction):
    """φ(u, v) = I[round(u), round(v)] (Eq. 6, ties round up); outside the image, the border pixel."""

    def forward(self, images: torch.Tensor) -> ContinuousImage:
        return _Nearest(images)


@RECONSTRUCTIONS.register("bilinear")
class BilinearReconstruction(Reconstruction):
    """φ(u, v) = Σ ω_k I[neighbour_k] over the 4 neighbours with bilinear weights (Eq. 5), border-clamped."""

    def forward(self, images: torch.Tensor) -> ContinuousImage:
        return _Bilinear(images)
