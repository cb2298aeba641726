"""The attack registry, the :class:`Attack` base class and :func:`build_attack`."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import InputError
from ..registry import Registry
from ..utils.runtime import eval_mode
from ..utils.validation import check_images, check_labels, inputs_checked, is_real, is_whole
from .checks import check_adversarial


class Attack:
    """An L-inf attack bound to a model: ``attack(images, labels) -> adversarial images``.

    ``name``, ``eps`` and ``params`` (every attack-specific setting, defaults included, for cache keys) describe it.
    A call validates its inputs, runs the model in eval mode with frozen parameters (restoring both afterwards),
    seeds every random draw from ``seed`` (without touching the caller's random state), and checks that each
    adversarial example lies in the eps-ball of its input and in [0, 1] (raising :class:`AttackError` if not).
    Subclasses implement :meth:`_perturb`.
    """

    def __init__(self, name: str, model: nn.Module, eps: float, seed: int, params: dict[str, Any]) -> None:
        self.name, self.model, self.eps, self.seed, self.params = name, model, float(eps), int(seed), dict(params)

    def _perturb(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_images(images)
        check_labels(labels, images.shape[0])
        _check_device(self.model, images)
        images, labels = images.detach(), labels.detach().to(images.device)
        grads = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in grads:
            p.requires_grad_(False)
        try:
            with eval_mode(self.model), seeded(self.seed, images.device), inputs_checked():
                with torch.no_grad():
                    probe = self.model(images[:1])
                if not isinstance(probe, torch.Tensor) or probe.dim() != 2:
                    shape = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
                    raise InputError(f"attack {self.name!r}: the model must return logits of shape (N, classes), "
                                     f"got {shape}")
                check_labels(labels, images.shape[0], num_classes=probe.shape[1])
                with torch.enable_grad():
                    x_adv = self._perturb(images, labels, probe.shape[1])
        finally:
            for p, flag in grads:
                p.requires_grad_(flag)
        check_adversarial(images, x_adv, self.eps)
        return x_adv.detach().to(images.dtype)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({self.name!r}, eps={self.eps:.6g}, seed={self.seed}{', ' if args else ''}{args})"


ATTACKS: Registry[Attack] = Registry("attack")


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run the block with torch's global RNG (CPU and ``device``) seeded by ``seed``, restoring it afterwards."""
    accel = {} if device.type == "cpu" else {"devices": [device], "device_type": device.type}
    with torch.random.fork_rng(**({"devices": []} | accel)):
        torch.manual_seed(seed)
        yield


def _check_device(model: nn.Module, images: torch.Tensor) -> None:
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), None)
    if tensor is not None and tensor.device != images.device:
        raise InputError(f"the model is on {tensor.device} but the images are on {images.device}; move one of "
                         f"them, e.g. images.to({str(tensor.device)!r})")


def check_eps(eps: object) -> float:
    """Validate an L-inf radius in [0, 1] pixel units."""
    if not is_real(eps):
        raise InputError(f"eps must be a finite number (an L-inf radius in [0, 1] pixel units, e.g. 8/255), "
                         f"got {eps!r}")
    if eps < 0:
        raise InputError(f"eps must be >= 0, got {eps}; it is the L-inf radius, e.g. 8/255 for CIFAR and 4/255 "
                         f"for ImageNet (the paper's §6)")
    if eps > 1:
        raise InputError(f"eps = {eps} exceeds 1: images are in [0, 1], so give eps in those units "
                         f"(e.g. {eps:g}/255 = {eps / 255:.4g} if you meant 0..255 units)")
    return float(eps)


def build_attack(name: str, model: nn.Module, eps: float = 8 / 255, seed: int = 0, **params: Any) -> Attack:
    """Build registered attack ``name`` against ``model`` (raw [0, 1] images -> logits).

    ``eps`` is the L-inf radius (the paper uses 8/255 on CIFAR, 4/255 on ImageNet); ``seed`` makes every random
    draw reproducible; ``params`` override the attack's defaults (see ``ATTACKS.get(name).meta["defaults"]``).
    """
    entry = ATTACKS.get(name)
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module mapping [0, 1] images to logits, got {type(model).__name__}")
    if not is_whole(seed, 0):
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    return entry.factory(model=model, eps=check_eps(eps), seed=seed, **params)


def resolve_params(attack: str, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated by ``given``, rejecting unknown names with the list of accepted ones."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        accepted = ", ".join(sorted(defaults)) or "none"
        raise InputError(f"attack {attack!r} has no parameter(s) {', '.join(unknown)}; accepted: {accepted}")
    for key, value in given.items():
        default = defaults[key]
        number = (int, float)
        if (isinstance(default, number) and not isinstance(default, bool)
                and (isinstance(value, bool) or not isinstance(value, number))):
            raise InputError(f"attack {attack!r}: parameter {key} must be a number (default {default!r}), got "
                             f"{value!r}; write e.g. {key}={default!r}")
        if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float) \
                and not value.is_integer():
            raise InputError(f"attack {attack!r}: parameter {key} must be a whole number, got {value!r}")
        if isinstance(default, bool) and not isinstance(value, bool):
            raise InputError(f"attack {attack!r}: parameter {key} must be True or False, got {value!r}")
    return {**defaults, **{k: int(v) if isinstance(defaults[k], int) and not isinstance(defaults[k], bool)
                           and isinstance(v, float) else v for k, v in given.items()}}
