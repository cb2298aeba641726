"""Sanity checks on adversarial examples and on the gradients an attack relies on."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError, IradError
from ..utils.runtime import eval_mode
from ..utils.validation import check_images, check_labels


class AttackError(IradError, RuntimeError):
    """An attack produced invalid adversarial examples (outside the eps-ball or [0, 1], or NaN)."""


def check_adversarial(x: torch.Tensor, x_adv: torch.Tensor, eps: float, tol: float = 1e-6) -> float:
    """Max L-inf distance between ``x_adv`` and ``x``; raises :class:`AttackError` unless every adversarial
    example is finite, lies in the L-inf ball of radius ``eps`` (up to ``tol``) around its input and in [0, 1]."""
    if not isinstance(x, torch.Tensor) or not isinstance(x_adv, torch.Tensor):
        raise InputError(f"x and x_adv must be torch.Tensors, got {type(x).__name__} and {type(x_adv).__name__}")
    if x.shape != x_adv.shape:
        raise InputError(f"x_adv has shape {tuple(x_adv.shape)} but x has {tuple(x.shape)}; they must match")
    if x.numel() == 0:
        return 0.0
    x, x_adv = x.detach(), x_adv.detach().to(x.device)
    if not torch.isfinite(x_adv).all():
        bad = (~torch.isfinite(x_adv)).flatten(1).any(1).sum().item() if x_adv.dim() > 1 else "some"
        raise AttackError(f"{bad} adversarial example(s) contain NaN/Inf; the attack or the model it attacks is "
                          f"numerically broken (check gradient_health(model, x, y))")
    dist = (x_adv.float() - x.float()).abs()
    dist_per = dist.flatten(1).amax(1) if dist.dim() > 1 else dist
    worst = float(dist_per.max())
    if worst > eps + tol:
        raise AttackError(f"{int((dist_per > eps + tol).sum())} adversarial example(s) leave the L-inf ball: max "
                          f"distance {worst:.6g} > eps {eps:.6g} (+{tol:g}); the attack must project onto the ball")
    lo, hi = float(x_adv.min()), float(x_adv.max())
    if lo < -tol or hi > 1 + tol:
        raise AttackError(f"adversarial examples leave the image range [0, 1] (min {lo:.6g}, max {hi:.6g}); the "
                          f"attack must clip to [0, 1]")
    return worst


def gradient_health(model: nn.Module, x: torch.Tensor, y: torch.Tensor, zero_threshold: float = 0.5,
                    warn: bool = True) -> dict[str, float | bool]:
    """Inspect d CE(model(x), y) / dx for signs of gradient masking (Athalye et al. 2018).

    Returns ``{"zero_fraction": fraction of input-gradient entries that are exactly 0, "finite": whether the loss
    and every gradient entry are finite}``. When ``warn`` is True, warns if the gradient is non-finite or at least
    ``zero_threshold`` of its entries are zero: gradient-based attacks on such a model overstate its robustness;
    attack it through the ``"bpda"`` threat model instead (the paper's Table 3). The model runs in eval mode and
    its previous mode is restored.
    """
    check_images(x, "x")
    check_labels(y, x.shape[0], name="y")
    with eval_mode(model), torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        logits = model(xg)
        loss = F.cross_entropy(logits, y.to(logits.device), reduction="sum")
        grad = torch.autograd.grad(loss, xg, allow_unused=True)[0] if loss.requires_grad else None
    finite = bool(torch.isfinite(loss.detach()))
    if grad is None:  # the output does not depend on x through autograd at all
        zero_fraction = 1.0
    else:
        zero_fraction = float((grad == 0).float().mean())
        finite = finite and bool(torch.isfinite(grad).all())
    if warn and (not finite or zero_fraction >= zero_threshold):
        what = "non-finite" if not finite else f"exactly zero for {zero_fraction:.0%} of the input entries"
        warnings.warn(f"the model's input gradient is {what}: gradient-based attacks will overstate robustness "
                      f"(gradient masking). Attack it with the 'bpda' threat model (BPDAWrapper), which replaces "
                      f"the defense's backward pass by the identity.", RuntimeWarning, stacklevel=2)
    return {"zero_fraction": zero_fraction, "finite": finite}
