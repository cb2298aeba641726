"""The variance-preserving SDE of Song et al., "Score-Based Generative Modeling through Stochastic Differential
Equations" (ICLR 2021), with the constants DiffPure uses (β_min = 0.1, β_max = 20), on images in [-1, 1]:

    forward:  dx = -½ β(t) x dt + sqrt(β(t)) dw,                       β(t) = β_min + t (β_max - β_min), t in [0, 1]
    marginal: x_t = α(t) x_0 + σ(t) ε,  ε ~ N(0, I),  α(t) = exp(-¼ t² (β_max - β_min) - ½ t β_min),  σ² = 1 - α²
    reverse:  dx = [-½ β(t) x - β(t) ∇log p_t(x)] dt + sqrt(β(t)) dw̄    (time running from t to 0)

A noise-prediction model ε̂(x, t) gives the score ∇log p_t(x) ≈ -ε̂(x, t) / σ(t).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import InputError

BETA_MIN = 0.1
BETA_MAX = 20.0


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images to the diffusion model's [-1, 1]."""
    return 2 * x - 1


def from_model_range(y: torch.Tensor) -> torch.Tensor:
    """[-1, 1] back to [0, 1] (not clamped)."""
    return (y + 1) / 2


def _per_sample(v: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor | float:
    """A coefficient per sample (shape N) as N x 1 x 1 x 1 so that it broadcasts over an image batch."""
    return v.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype) if isinstance(v, torch.Tensor) else v


class VPSDE:
    """The VP-SDE; every method takes ``t`` as a float (one time for the batch) or a tensor of N times."""

    def __init__(self, beta_min: float = BETA_MIN, beta_max: float = BETA_MAX) -> None:
        if not (math.isfinite(beta_min) and math.isfinite(beta_max) and 0 <= beta_min < beta_max):
            raise InputError(f"the VP-SDE needs 0 <= beta_min < beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def __repr__(self) -> str:
        return f"VPSDE(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})"

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_alpha(self, t):
        """log α(t) = -¼ t² (β_max - β_min) - ½ t β_min (the log of the marginal's mean coefficient)."""
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha(self, t):
        log_alpha = self.log_alpha(t)
        return torch.exp(log_alpha) if isinstance(t, torch.Tensor) else math.exp(log_alpha)

    def sigma(self, t):
        """σ(t) = sqrt(1 - α(t)²), computed as sqrt(-expm1(2 log α)) to stay accurate at small t."""
        two_log_alpha = 2 * self.log_alpha(t)
        if isinstance(t, torch.Tensor):
            return torch.sqrt(-torch.expm1(two_log_alpha))
        return math.sqrt(-math.expm1(two_log_alpha))

    def marginal(self, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
        """x_t = α(t) x_0 + σ(t) ε: a sample of the forward diffusion at time ``t`` given its noise ``ε``."""
        return _per_sample(self.alpha(t), x0) * x0 + _per_sample(self.sigma(t), x0) * noise

    def reverse_step(self, x: torch.Tensor, t: float, dt: float, eps: torch.Tensor, noise: torch.Tensor
                     ) -> torch.Tensor:
        """One Euler–Maruyama step of the reverse-time SDE from ``t`` to ``t - dt``, with score -``eps`` / σ(t):
        x + [½ β x + β score] dt + sqrt(β dt) z."""
        beta = self.beta(t)
        score = -eps / self.sigma(t)
        return x + (0.5 * beta * x + beta * score) * dt + math.sqrt(beta * dt) * noise


def denoising_loss(model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], sde: VPSDE, x0: torch.Tensor,
                   t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Denoising score matching in its ε form: MSE between ``model(x_t, t)`` and the noise ε that made x_t."""
    return F.mse_loss(model(sde.marginal(x0, t, noise), t), noise)
