"""BPDA (Athalye et al. 2018) and EOT (Athalye et al. 2018b): the adaptive attacks of the paper's Table 3."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import InputError
from ..utils.validation import is_whole


class _IdentityBackward(torch.autograd.Function):
    """Forward: ``defense(x)``; backward: the identity (the defense is approximated by g(x) = x)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, defense: nn.Module) -> torch.Tensor:
        out = defense(x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(f"BPDA needs a defense that keeps the input shape {tuple(x.shape)}, got {shape}")
        return out.detach().clone()  # never hand back (a view of) the input itself

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output, None


class BPDAWrapper(nn.Module):
    """``defense`` in the forward pass, the identity in the backward pass (Backward Pass Differentiable
    Approximation, Athalye et al. 2018): lets gradient attacks through non-differentiable or gradient-masking
    purifiers. The "bpda" threat model attacks ``classifier(BPDAWrapper(defense)(x))`` (Table 3)."""

    def __init__(self, defense: nn.Module) -> None:
        super().__init__()
        if not isinstance(defense, nn.Module):
            raise InputError(f"BPDAWrapper needs an nn.Module defense, got {type(defense).__name__}")
        self.defense = defense

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return _IdentityBackward.apply(images, self.defense)


class EOTWrapper(nn.Module):
    """Expectation over Transformation: the mean of ``model``'s logits over ``samples`` forward passes, so that
    attacks on a randomized defense follow the expected gradient (Athalye et al. 2018b)."""

    def __init__(self, model: nn.Module, samples: int) -> None:
        super().__init__()
        if not is_whole(samples, 1):
            raise InputError(f"eot_samples must be a positive int, got {samples!r}")
        self.model, self.samples = model, samples

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        total = self.model(images)
        for _ in range(self.samples - 1):
            total = total + self.model(images)
        return total / self.samples
