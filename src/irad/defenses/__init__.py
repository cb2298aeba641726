"""Defenses: ``nn.Module``s mapping a [0, 1] batch N x 3 x H x W to a purified batch of the same shape.

>>> defense = irad.load_defense("irad")                      # shipped CIFAR-10 IRAD
>>> defense = irad.load_defense("bilinear-sv", gamma=1.5)    # naive resampling, Eq. 5 + Eq. 8
>>> defense = irad.load_defense("stl")                       # STL baseline (Sun et al. 2019)
>>> robust = irad.defend(classifier, defense)                # classifier(defense(x)) as one module

Every built-in defense is a :class:`Defense` (an ``nn.Module``); its ``info`` (:class:`DefenseInfo`) is what the
toolkit knows of it, in one typed record: name, randomized, weights' sha256, classifiers it was trained against.
Register your own with ``@DEFENSES.register("name")`` on a factory returning a :class:`Defense` subclass (any
``nn.Module`` works; :func:`defense_info` reads it the same way); say ``randomized = True`` if its output is random
(evaluation then uses EOT). The factory's keyword parameters are the
defense's parameters: ``load_defense`` refuses any other (unless the factory takes ``**kwargs``) and passes
``dataset`` only to factories that take it.
"""

from ..defense_base import Defense, DefenseInfo, defense_info, is_randomized
from .registry import DEFENSES, DefendedClassifier, NoDefense, defend, load_defense
from . import classic as _classic  # noqa: F401  (registers the classic baselines)
from . import resampling as _resampling  # noqa: F401  (registers the resampling defenses)
from . import stl as _stl  # noqa: F401  (registers the STL baseline)
from . import diffpure as _diffpure  # noqa: F401  (registers DiffPure and IRAD+DiffPure)
from . import nrp as _nrp  # noqa: F401  (registers the NRP baseline)

__all__ = ["DEFENSES", "Defense", "DefendedClassifier", "DefenseInfo", "NoDefense", "defend", "defense_info",
           "is_randomized", "load_defense"]
