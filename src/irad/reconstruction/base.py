"""The RECONS interface and the pixel-coordinate grid G of Eq. 4."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry


def pixel_grid(n: int, h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """G of Eq. 4: ``G[b, i, j] = [i, j]`` (row, column) in pixel units, shape N x H x W x 2."""
    rows = torch.arange(h, device=device, dtype=dtype)
    cols = torch.arange(w, device=device, dtype=dtype)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)
    return grid.unsqueeze(0).expand(n, h, w, 2)




class ContinuousImage:
    """φ of Eq. 2: a continuous image built from a batch N x 3 x H x W.

    ``query(coords)`` returns colours at pixel-unit coordinates ``coords`` (N x H' x W' x 2) as N x 3 x H' x W'.
    ``features`` is a per-pixel embedding F = FEAT(I) (N x C x H x W) when the reconstruction has one (implicit);
    SampleNet (Eq. 10) reads it.
    """

    def __init__(self, images: torch.Tensor, features: torch.Tensor | None = None) -> None:
        self.images = images
        self.features = features

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[-2]), int(self.images.shape[-1])

    def query(self, coords: torch.Tensor, cell: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def query_grid(self) -> torch.Tensor:
        """φ at the pixel grid G itself (U = G); reconstructions may override this with a faster exact path."""
        n, _, h, w = self.images.shape
        return self.query(pixel_grid(n, h, w, device=self.images.device, dtype=self.images.dtype))


class Reconstruction(nn.Module):
    """RECONS: ``forward(images) -> ContinuousImage``."""

    #: whether ``forward`` is randomised (none of the shipped ones are)
    randomized = False

    def forward(self, images: torch.Tensor) -> ContinuousImage:  # pragma: no cover - interface
        raise NotImplementedError


RECONSTRUCTIONS: Registry[Reconstruction] = Registry("reconstruction")
