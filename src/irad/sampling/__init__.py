"""SAMPLER (Eq. 4, 7, 8, 10): the coordinates U = G + shift at which φ is resampled.

* ``identity``: U = G (no shift; implicit reconstruction alone is DISCO-like);
* ``si`` (Eq. 7): spatially invariant shift U = G + [d, d];
* ``sv`` (Eq. 8): spatially variant shift U = G + [d1, d2], d1, d2 ~ U(0, γ) per pixel (randomised);
* ``samplenet`` (Eq. 10): U = G + SampleNet(F(i, j), [i, j]), a learned per-pixel shift.
"""

from .samplers import SAMPLERS, IdentitySampler, Sampler, SpatiallyInvariantSampler, SpatiallyVariantSampler
from .samplenet import SampleNet

__all__ = [
    "SAMPLERS",
    "Sampler",
    "IdentitySampler",
    "SpatiallyInvariantSampler",
    "SpatiallyVariantSampler",
    "SampleNet",
]
