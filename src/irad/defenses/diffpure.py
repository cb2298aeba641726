"""DiffPure (Nie et al., "Diffusion Models for Adversarial Purification", ICML 2022) and IRAD+DiffPure (§5 of the
IRAD paper).

DiffPure diffuses the input a little with the VP-SDE (β_min = 0.1, β_max = 20) and denoises it back with the
reverse-time SDE, whose score comes from a noise-prediction U-Net (:mod:`irad.diffusion`, trained with
``irad train diffusion``):

    y    = α(t*) (2x - 1) + σ(t*) ε                               (forward diffusion to t*, in closed form)
    y   <- y + [½ β(t) y - β(t) ε̂(y, t) / σ(t)] Δt + sqrt(β(t) Δt) z,   t = t*, t* - Δt, ..., Δt   (Euler–Maruyama)
    out  = clamp((y + 1) / 2, 0, 1),                              Δt = t* / steps

DiffPure's CIFAR-10 setting is t* = 0.1 in 100 steps (Δt = 10^-3, the "100 time steps" of the IRAD paper's tables).
IRAD+DiffPure runs a short DiffPure with the same Δt (the paper's "t = 20": t* = 0.02 in 20 steps) and resamples its
output with IRAD.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..diffusion import VPSDE, ScoreUNet, from_model_range, to_model_range
from ..errors import InputError, WeightsError
from ..utils.runtime import call_generator
from ..utils.validation import check_images, is_real, is_whole
from ..weights import load_defense_weights, load_strict, model_spec
from ..defense_base import Defense
from .registry import DEFENSES, load_defense

TRAIN_HINT = "train a score model with `irad train diffusion`"


def check_diffpure_params(t_star: float, steps: int, seed: int | None) -> None:
    """Raise :class:`InputError` for t* outside [0, 1], fewer than 1 step, or a seed that is not an integer."""
    if not (is_real(t_star) and 0 <= t_star <= 1):
        raise InputError(f"DiffPure t_star (diffusion time) must be a number in [0, 1], got {t_star!r} "
                         f"(DiffPure on CIFAR-10: 0.1)")
    if not is_whole(steps, 1):
        raise InputError(f"DiffPure steps (reverse SDE steps) must be an integer >= 1, got {steps!r}")
    if seed is not None and not is_whole(seed):
        raise InputError(f"seed must be an integer or None, got {seed!r}")


class DiffPure(Defense):
    """DiffPure: diffuse [0, 1] images N x 3 x H x W to ``t_star`` with the VP-SDE marginal, integrate the reverse
    SDE back to 0 with Euler–Maruyama in ``steps`` steps (score -ε̂ / σ from ``score``), clamp to [0, 1].
    H and W must be multiples of the U-Net's downsampling factor; ``t_star = 0`` returns the input unchanged.

    Randomised unless seeded. ``seed`` makes it reproducible per call, as the SV sampler: a generator seeded with
    ``seed`` at every call draws the forward noise and every step's noise, so the same input and seed give the same
    output (EOT over repeated calls sees one draw, and ``randomized`` is False); ``seed=None`` draws from torch's
    global generator.

    Differentiable. With gradients required (an input or weight that requires grad, grad mode on), every reverse
    step runs under ``torch.utils.checkpoint`` (``checkpointing=True``): the backward pass keeps only the N x 3 x H x W
    state of each step and recomputes one U-Net pass at a time, so memory grows with ``steps`` times the image size
    instead of ``steps`` times the U-Net's activations (at the price of one extra U-Net forward per step). The
    gradients are the exact gradients of the discretised purification for the drawn noise (DiffPure itself uses
    the adjoint SDE of torchsde for the same purpose)."""

    def __init__(self, score: ScoreUNet, t_star: float = 0.1, steps: int = 100, seed: int | None = None,
                 sde: VPSDE | None = None, checkpointing: bool = True) -> None:
        super().__init__()
        check_diffpure_params(t_star, steps, seed)
        self.score, self.sde = score, sde or VPSDE()
        self.t_star, self.steps, self.seed = float(t_star), int(steps), seed
        self.checkpointing = checkpointing

    @property
    def randomized(self) -> bool:
        return self.seed is None

    def extra_repr(self) -> str:
        return f"t_star={self.t_star:g}, steps={self.steps}, seed={self.seed}, sde={self.sde}"

    def _step(self, y: torch.Tensor, t: float, dt: float, noise: torch.Tensor) -> torch.Tensor:
        return self.sde.reverse_step(y, t, dt, self.score(y, t), noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, channels=self.score.in_channels)
        if self.t_star == 0:
            return x
        self.score.check_input(x)
        dtype = next(self.score.parameters()).dtype
        gen = call_generator(self.seed, x.device)
        y = to_model_range(x.to(dtype))
        y = self.sde.marginal(y, self.t_star, torch.randn(y.shape, generator=gen, device=y.device, dtype=dtype))
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad
                                                                          for p in self.score.parameters()))
        dt = self.t_star / self.steps
        for i in range(self.steps):
            t = self.t_star - i * dt
            noise = torch.randn(y.shape, generator=gen, device=y.device, dtype=dtype)  # drawn outside the checkpoint
            if needs_grad and self.checkpointing:
                y = checkpoint(self._step, y, t, dt, noise, use_reentrant=False)
            else:
                y = self._step(y, t, dt, noise)
        return from_model_range(y).clamp(0, 1).to(x.dtype)


def load_score_model(weights: str | Path | None = None, dataset: str = "cifar10"
                     ) -> tuple[ScoreUNet, VPSDE, dict[str, Any]]:
    """The score U-Net of a ``irad train diffusion`` weight file (rebuilt from its metadata), its SDE and metadata."""
    state, meta = load_defense_weights("diffpure", weights, dataset, TRAIN_HINT)
    arch = model_spec(meta, "score-unet", "the DiffPure weight file")
    if arch is None:
        raise WeightsError("the DiffPure weight file records no model spec ('spec' or 'architecture' in its "
                           "metadata): not a file `irad train diffusion` wrote, or an older one without its .json "
                           f"sidecar; {TRAIN_HINT}")
    model = ScoreUNet(**arch)
    load_strict(model, state, "DiffPure score U-Net")
    return model.requires_grad_(False), VPSDE(**meta.get("sde", {})), meta


def load_diffpure(weights: str | Path | None, dataset: str, t_star: float, steps: int, seed: int | None) -> DiffPure:
    """A :class:`DiffPure` from a weight file; warns when t* lies beyond the times the score model was trained on."""
    check_diffpure_params(t_star, steps, seed)
    model, sde, meta = load_score_model(weights, dataset)
    t_max = meta.get("settings", {}).get("t_max")
    if t_max is not None and t_star > t_max:
        warnings.warn(f"t_star={t_star:g} exceeds the largest diffusion time the score model was trained on "
                      f"(t_max={t_max:g}); its score there is an extrapolation", stacklevel=3)
    module = DiffPure(model, t_star, steps, seed, sde)
    module.meta = meta
    return module


@DEFENSES.register("diffpure")
def diffpure(dataset: str = "cifar10", weights: str | Path | None = None, t_star: float = 0.1, steps: int = 100,
             seed: int | None = None) -> DiffPure:
    """DiffPure (Nie et al. 2022): VP-SDE diffusion to t_star, reverse SDE back to 0; randomised.

    ``steps`` Euler–Maruyama steps (DiffPure: t* = 0.1 in 100); ``seed`` makes each call reproducible;
    ``weights``: a score model from `irad train diffusion`."""
    return load_diffpure(weights, dataset, t_star, steps, seed)


class IRADDiffPure(Defense):
    """IRAD after a short DiffPure (IRAD paper §5): irad(diffpure(x)). Randomised through DiffPure (unless seeded)."""

    def __init__(self, diffpure: DiffPure, irad: nn.Module) -> None:
        super().__init__()
        self.diffpure, self.irad = diffpure, irad

    @property
    def randomized(self) -> bool:
        return self.diffpure.randomized or bool(getattr(self.irad, "randomized", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.irad(self.diffpure(x))


@DEFENSES.register("irad+diffpure")
def irad_diffpure(dataset: str = "cifar10", weights: str | Path | None = None, irad_weights: str | Path | None = None,
                  t_star: float = 0.02, steps: int = 20, seed: int | None = None) -> IRADDiffPure:
    """IRAD after a short DiffPure (IRAD paper §5, Tables 5/16); randomised.

    DiffPure with 20 steps of DiffPure's Δt = 10^-3 (t* = 0.02, the paper's "t = 20"), then IRAD. ``weights``: the
    score model (`irad train diffusion`); ``irad_weights``: IRAD's (None: the shipped default)."""
    first = load_diffpure(weights, dataset, t_star, steps, seed)
    module = IRADDiffPure(first, load_defense("irad", dataset=dataset, weights=irad_weights))
    module.meta = combined_meta({"diffpure": first.meta, "irad": getattr(module.irad, "meta", {})})
    return module


def combined_meta(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Metadata of a defense made of several weight files: the parts' metadata under their names, plus what the
    evaluation reads at the top level: ``sha256``, a sha256 over ``"name:sha256"`` of every part joined by ``+``
    (None if a part has none), and ``trained_against``, the union of the parts' lists."""
    digests = [f"{name}:{meta.get('sha256')}" for name, meta in parts.items()]
    known = all(meta.get("sha256") for meta in parts.values())
    trained = sorted({n for meta in parts.values() for n in meta.get("trained_against") or []})
    return {**parts, "sha256": hashlib.sha256("+".join(digests).encode()).hexdigest() if known else None,
            "trained_against": trained}
