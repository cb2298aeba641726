"""The base class of the toolkit's defenses, and :class:`DefenseInfo`, the typed record of what is known of one.

It imports nothing of the package (a test holds it to that), so that the resampling core (``irad.resampling``) and
the defenses layer (``irad.defenses``, which exports it) can both build on it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn


def is_randomized(module: nn.Module) -> bool:
    """True if the module's output is random (it or a sub-module says ``randomized = True``)."""
    return any(bool(getattr(m, "randomized", False)) for m in module.modules())


@dataclass(frozen=True)
class DefenseInfo:
    """What the toolkit knows about a defense, in one typed record (:func:`defense_info`).

    ``name``: its registry name (None for a module not made by :func:`load_defense`); ``randomized``: its output is
    random (evaluation uses repeats and EOT); ``sha256``: of its weights (None without weights), part of every cache
    key; ``trained_against``: classifiers whose gradients shaped it (rows with such a victim are white-box with
    respect to training); ``steps_done`` / ``steps_planned``: how far its training got; ``meta``: the weights' full
    metadata."""

    name: str | None = None
    randomized: bool = False
    sha256: str | None = None
    trained_against: tuple[str, ...] = ()
    steps_done: int | None = None
    steps_planned: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        """Its weights come from a training run stopped before its last step (a ``--time-limit``)."""
        return self.steps_done is not None and self.steps_planned is not None and self.steps_done < self.steps_planned


def defense_info(module: nn.Module) -> DefenseInfo:
    """The :class:`DefenseInfo` of any defense module: read from its weights' metadata (``module.meta``, set by the
    factories that load weights) and its modules' ``randomized`` flags."""
    meta = getattr(module, "meta", None) or {}
    return DefenseInfo(name=getattr(module, "defense_name", None), randomized=is_randomized(module),
                       sha256=meta.get("sha256"), trained_against=tuple(meta.get("trained_against") or ()),
                       steps_done=meta.get("steps_done"), steps_planned=meta.get("steps_planned"), meta=dict(meta))


class Defense(nn.Module):
    """A defense: ``forward`` maps a [0, 1] batch N x 3 x H x W to a purified batch of the same shape.

    What the toolkit reads of a defense lives here, typed, for every defense the same way:

    * ``randomized`` (class attribute or property): its output is random, so evaluation repeats it and attacks
      average over its draws (EOT); False unless a subclass says otherwise;
    * ``meta``: the metadata of its weights (``{}`` without weights): sha256, training command, ``trained_against``;
      set by the factory that loads them;
    * ``defense_name``: its registry name, set by :func:`~irad.defenses.load_defense`;
    * ``info``: all of it as one :class:`DefenseInfo`.

    A plugin may return any ``nn.Module`` (:func:`defense_info` reads the same attributes where they exist);
    subclassing ``Defense`` gives it these attributes and their defaults.
    """

    randomized: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, Any] = {}
        self.defense_name: str | None = None

    @property
    def info(self) -> DefenseInfo:
        return defense_info(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - every defense defines it
        raise NotImplementedError(f"{type(self).__name__} must define forward(images)")
