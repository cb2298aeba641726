"""Defenses: ``nn.Module``s mapping a [0, 1] batch N x 3 x H x W to a purified batch of the same shape.

>>> defense = irad.load_defense("irad")                      # shipped CIFAR-10 IRAD
>>> defense = irad.load_defense("bilinear-sv", gamma=1.5)    # naive resampling, Eq. 5 + Eq. 8
>>> robust = irad.defend(classifier, defense)                # classifier(defense(x)) as one module

Register your own with ``@DEFENSES.register("name")`` on a factory returning an ``nn.Module``; set its attribute
``randomized = True`` if its output is random (evaluation then uses EOT).
"""

from .registry import DEFENSES, DefendedClassifier, NoDefense, defend, is_randomized, load_defense
from . import classic as _classic  # noqa: F401  (registers the classic baselines)
from . import resampling as _resampling  # noqa: F401  (registers the resampling defenses)

__all__ = ["DEFENSES", "DefendedClassifier", "NoDefense", "defend", "is_randomized", "load_defense"]
