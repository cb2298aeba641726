"""Admix (Wang, He, Wang & He, ICCV 2021, "Admix: Enhancing the transferability of adversarial attacks").

The transfer attack of the paper's Tables 13-14, written from the Admix paper's description: MI-FGSM whose
gradient at each iteration is the average of the gradients of admixed copies of the current adversarial image,

    g_bar = 1/(m1 m2) * sum_{x' in X'} sum_{i<m1} grad_x J(gamma_i * (x_adv + eta * x'), y),   gamma_i = 1/2^i,

where X' holds m2 images drawn at random from the batch (preferring images of another class, as the paper samples
"other categories"); then g = decay * g + g_bar / ||g_bar||_1 and x_adv = Clip_eps(x_adv + alpha * sign(g)).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..utils.validation import is_whole
from .base import ATTACKS, Attack, resolve_params

DEFAULTS: dict[str, Any] = {"steps": 10, "alpha": None, "decay": 1.0, "m1": 5, "m2": 3, "eta": 0.2,
                            "clamp_mix": True}


def pick_partners(labels: torch.Tensor, k: int) -> torch.Tensor:
    """(k, N) indices of random partner images: another class if the batch has one, else another image, else
    the image itself (a batch of one)."""
    n = labels.shape[0]
    other_class = (labels[None, :] != labels[:, None]).float()
    other_image = 1.0 - torch.eye(n, device=labels.device)
    tier = 2.0 * other_class + other_image  # 3: other class, 1: same class, 0: itself; noise in [0, 1) ranks ties
    return torch.stack([(tier + torch.rand(n, n, device=labels.device)).argmax(1) for _ in range(k)])


class Admix(Attack):
    """Admix on top of MI-FGSM (see the module docstring)."""

    def _perturb(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        p = self.params
        steps, alpha, decay, m1, m2, eta = p["steps"], p["alpha"], p["decay"], p["m1"], p["m2"], p["eta"]
        x_adv, momentum = images.clone(), torch.zeros_like(images)
        for _ in range(steps):
            grad = torch.zeros_like(images)
            for idx in pick_partners(labels, m2):
                other = images[idx]
                for i in range(m1):
                    x = x_adv.clone().requires_grad_(True)
                    mix = (x + eta * other) / 2 ** i
                    if p["clamp_mix"]:  # forward in [0, 1] for range-checking defenses, identity gradient
                        mix = mix + (mix.clamp(0, 1) - mix).detach()
                    loss = F.cross_entropy(self.model(mix), labels, reduction="sum")
                    grad += torch.autograd.grad(loss, x)[0]
            grad /= m1 * m2
            l1 = grad.abs().mean(dim=tuple(range(1, grad.dim())), keepdim=True).clamp_min(1e-12)
            momentum = decay * momentum + grad / l1
            x_adv = x_adv + alpha * momentum.sign()
            x_adv = torch.min(torch.max(x_adv, images - self.eps), images + self.eps).clamp(0, 1)
        return x_adv


@ATTACKS.register("admix", defaults=DEFAULTS, source="irad")
def admix(model: nn.Module, eps: float, seed: int, **params: Any) -> Attack:
    """Admix (Wang et al. 2021): MI-FGSM on admixed inputs; transfer attack of Tables 13-14.

    Defaults: steps=10, alpha=eps/steps (None), decay=1.0, m1=5 scale copies, m2=3 admixed images, eta=0.2,
    clamp_mix=True (the admixed copies are clamped to [0, 1] in the forward pass with an identity gradient, so
    defenses that validate their input range accept them).
    """
    params = resolve_params("admix", DEFAULTS, params)
    for key in ("steps", "m1", "m2"):
        if not is_whole(params[key], 1):
            raise InputError(f"admix: {key} must be a positive int, got {params[key]!r}")
    if params["alpha"] is None:
        params["alpha"] = eps / params["steps"]
    return Admix("admix", model, eps, seed, params)
