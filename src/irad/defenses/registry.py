"""The defense registry, ``load_defense`` and ``defend``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..registry import Registry
from ..utils.validation import check_images

DEFENSES: Registry[nn.Module] = Registry("defense")


def is_randomized(module: nn.Module) -> bool:
    """True if the module's output is random (it or a sub-module says ``randomized = True``)."""
    return any(bool(getattr(m, "randomized", False)) for m in module.modules())


class NoDefense(nn.Module):
    """The identity: the undefended baseline ("w.o. defense" in the paper's tables)."""

    randomized = False

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return check_images(images)


@DEFENSES.register("none")
def no_defense(dataset: str = "cifar10", **_: Any) -> nn.Module:
    """No defense (identity)."""
    return NoDefense()


def load_defense(name: str, dataset: str = "cifar10", device: str | torch.device = "cpu", **kwargs: Any) -> nn.Module:
    """Build defense ``name`` for ``dataset`` (keyword arguments are the defense's parameters), in eval mode."""
    module = DEFENSES.build(name, dataset=dataset, **kwargs)
    module.defense_name = DEFENSES.get(name).name
    return module.to(device).eval()


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
