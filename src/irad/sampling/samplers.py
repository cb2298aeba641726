"""Fixed and random samplers of §3.2."""

from __future__ import annotations

import torch
from torch import nn

from ..reconstruction.base import ContinuousImage
from ..registry import Registry


class Sampler(nn.Module):
    """SAMPLER: ``forward(phi, grid) -> U`` where grid = G (N x H x W x 2, pixel units)."""

    randomized = False

    def forward(self, phi: ContinuousImage, grid: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


SAMPLERS: Registry[Sampler] = Registry("sampler")


@SAMPLERS.register("identity")
class IdentitySampler(Sampler):
    """U = G."""

    def forward(self, phi: ContinuousImage, grid: torch.Tensor) -> torch.Tensor:
        return grid


@SAMPLERS.register("si")
class SpatiallyInvariantSampler(Sampler):
    """Eq. 7: U[i, j] = G[i, j] + [d, d] (every pixel moves by the same d pixels)."""

    def __init__(self, d: float = 1.5) -> None:
        super().__init__()
        self.d = float(d)

    def forward(self, phi: ContinuousImage, grid: torch.Tensor) -> torch.Tensor:
        return grid + self.d

    def extra_repr(self) -> str:
        return f"d={self.d}"


@SAMPLERS.register("sv")
class SpatiallyVariantSampler(Sampler):
    """Eq. 8: U[i, j] = G[i, j] + [d1, d2], d1, d2 ~ U(0, γ) drawn per pixel and per call (randomised).

    ``seed`` makes the draws reproducible: the generator is re-seeded at every call when ``fixed_seed`` is True,
    otherwise it advances (a fresh shift each call, reproducible as a sequence).
    """

    randomized = True

    def __init__(self, gamma: float = 1.5, seed: int | None = None, fixed_seed: bool = False) -> None:
        super().__init__()
        self.gamma, self.seed, self.fixed_seed = float(gamma), seed, fixed_seed
        self._generator: torch.Generator | None = None

    def _gen(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self._generator is None or self.fixed_seed or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def forward(self, phi: ContinuousImage, grid: torch.Tensor) -> torch.Tensor:
        shift = torch.rand(grid.shape, generator=self._gen(grid.device), device=grid.device, dtype=grid.dtype)
        return grid + self.gamma * shift

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, seed={self.seed}"
