"""The defense registry, ``load_defense`` and ``defend``."""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable

import torch
from torch import nn

from ..errors import InputError
from ..registry import Registry
from ..utils.validation import check_images
from ..defense_base import Defense, DefenseInfo, defense_info, is_randomized  # noqa: F401  (older import path)

DEFENSES: Registry[nn.Module] = Registry("defense")


class NoDefense(Defense):
    """The identity: the undefended baseline ("w.o. defense" in the paper's tables)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return check_images(images)


@DEFENSES.register("none")
def no_defense() -> nn.Module:
    """No defense (identity)."""
    return NoDefense()


def _signature(factory: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins and C callables have none
        return None


def accepts_param(factory: Callable[..., Any], name: str) -> bool:
    """Whether ``factory`` takes keyword ``name`` (by name or through ``**kwargs``)."""
    sig = _signature(factory)
    if sig is None:
        return True
    return name in sig.parameters or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def param_names(factory: Callable[..., Any]) -> list[str]:
    """The keyword parameters ``factory`` names in its signature (not ``*args`` / ``**kwargs``)."""
    sig = _signature(factory)
    return [] if sig is None else [n for n, p in sig.parameters.items()
                                   if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_params(factory: Callable[..., Any], params: dict[str, Any], what: str, hidden: tuple[str, ...] = (),
                 also: tuple[str, ...] = ()) -> None:
    """Raise :class:`InputError` if ``params`` has a keyword ``factory`` does not take, naming it and listing the
    valid ones: ``factory``'s (less ``hidden``) and ``also`` (taken elsewhere). Factories with ``**kwargs`` accept
    everything."""
    sig = _signature(factory)
    if sig is None or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    valid = [*also, *(n for n in param_names(factory) if n not in hidden)]
    unknown = [k for k in params if k not in valid and k not in hidden]
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listed = f"valid parameters: {', '.join(valid)}" if valid else "it takes no parameters"
        raise InputError(f"{what} has no parameter {', '.join(map(repr, unknown))}{hint}; {listed}")


def load_defense(name: str, dataset: str = "cifar10", device: str | torch.device = "cpu", **kwargs: Any) -> nn.Module:
    """Build defense ``name`` for ``dataset`` (keyword arguments are the defense's parameters), in eval mode with
    its weights frozen (``requires_grad=False``; gradients still reach the input; ``.requires_grad_(True)`` to
    fine-tune).

    An unknown parameter is an :class:`InputError` that lists the valid ones; ``dataset`` reaches only the
    factories that take it."""
    entry = DEFENSES.get(name)
    check_params(entry.factory, kwargs, f"defense {entry.name!r}", hidden=("dataset",))
    if accepts_param(entry.factory, "dataset"):
        kwargs = {"dataset": dataset, **kwargs}
    module = entry.factory(**kwargs)
    module.defense_name = entry.name
    return module.to(device).eval().requires_grad_(False)


class DefendedClassifier(nn.Module):
    """classifier(defense(x)) as one module (what an adaptive attacker attacks)."""

    def __init__(self, classifier: nn.Module, defense: nn.Module) -> None:
        super().__init__()
        self.defense, self.classifier = defense, classifier

    @property
    def randomized(self) -> bool:
        return is_randomized(self.defense)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.defense(images))


def defend(classifier: nn.Module, defense: nn.Module | str, **kwargs: Any) -> DefendedClassifier:
    """Put ``defense`` (a module or a registered name) in front of ``classifier``."""
    if isinstance(defense, str):
        defense = load_defense(defense, **kwargs)
    return DefendedClassifier(classifier, defense).eval()
