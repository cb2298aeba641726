"""Fixed and random samplers of §3.2."""

from __future__ import annotations

import torch
from torch import nn

from ..reconstruction.base import ContinuousImage
from ..registry import Registry
from ..errors import InputError
from ..utils.runtime import call_generator
from ..utils.validation import is_real


def _finite(what: str, value: float) -> float:
    """``value`` as a float, or an :class:`InputError` naming ``what`` when it is not a finite number."""
    if not is_real(value):
        raise InputError(f"{what} must be a finite number, got {value!r}")
    return float(value)


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
        self.d = _finite("d (the shift in pixels)", d)

    def forward(self, phi: ContinuousImage, grid: torch.Tensor) -> torch.Tensor:
        return grid + self.d

    def extra_repr(self) -> str:
        return f"d={self.d}"


@SAMPLERS.register("sv")
class SpatiallyVariantSampler(Sampler):
    """Eq. 8: U[i, j] = G[i, j] + [d1, d2], d1, d2 ~ U(0, γ) drawn per pixel (randomised).

    ``seed`` makes the draws reproducible: the generator is re-seeded with ``seed`` at every call, so the shift
    depends only on the seed and the call's batch shape (and device), never on how many batches came before: a
    resumed or re-ordered evaluation gives the same result. Consequently two calls on the same batch shape get
    the same shifts (a seeded sampler is deterministic per call, so EOT over repeated calls sees one draw, and
    ``randomized`` is False), while images within a batch still get different shifts. ``seed=None`` draws from the
    global generator instead.
    """

    def __init__(self, gamma: float = 1.5, seed: int | None = None) -> None:
        super().__init__()
        self.gamma, self.seed = _finite("gamma (the largest shift in pixels)", gamma), seed
        if self.gamma < 0:
            raise InputError(f"gamma must be >= 0 (shifts are drawn from U(0, gamma), Eq. 8), got {gamma!r}")

    @property
    def randomized(self) -> bool:
        return self.seed is None

    def forward(self, phi: ContinuousImage, grid: torch.Tensor) -> torch.Tensor:
        shift = torch.rand(grid.shape, generator=call_generator(self.seed, grid.device), device=grid.device, dtype=grid.dtype)
        return grid + self.gamma * shift

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, seed={self.seed}"
