"""AutoAttack (Croce & Hein 2020) from the reference implementation ``pyautoattack`` 0.2.0: the main attack of the
paper's oblivious (Table 2) and AutoAttack-based adaptive (Table 5) scenarios.

"autoattack" is version 'standard' (APGD-CE, APGD-T, FAB-T, Square; the RobustBench protocol the paper follows);
"autoattack-rand" is version 'rand' (APGD-CE and APGD-DLR with EOT over ``eot_iter`` = 20 passes), for randomized
defenses. Parameters (defaults are the reference values): ``attacks`` (run only these sub-attacks, e.g.
``["apgd-ce"]``; default the version's list), ``n_iter`` = 100 (APGD and FAB iterations), ``n_queries`` = 5000
(Square), ``eot_iter`` (20 for 'rand', 1 for 'standard'), ``batch_size`` = 250, and ``verbose`` = False (True
streams AutoAttack's progress log to stderr). Its warnings (randomized or gradient-masked model ...) are re-issued
as Python warnings. With fewer than 10 classes the targeted attacks use every other class as a target; sub-attacks
that need more classes (APGD-DLR: 3, APGD-T: 4) are skipped with a warning.
"""

from __future__ import annotations

import logging
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from pyautoattack import AutoAttack
from torch import nn

from ..errors import InputError
from ..utils.validation import is_whole
from .base import ATTACKS, Attack, resolve_params

SUB_ATTACKS = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")
VERSION_ATTACKS = {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"), "rand": ("apgd-ce", "apgd-dlr")}
MIN_CLASSES = {"apgd-dlr": 3, "apgd-t": 4, "fab-t": 2, "fab": 2}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg not in self.messages:
            self.messages.append(msg)


@contextmanager
def _quiet_autoattack(verbose: bool) -> Iterator[_Collect]:
    """Route the 'auto-attack' logger: warnings are collected, progress goes to stderr only if ``verbose``; also
    restore the trace function that AutoAttack's dynamic-defense check resets (debuggers, coverage)."""
    logger = logging.getLogger("auto-attack")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    collect = _Collect()
    handlers: list[logging.Handler] = [collect]
    if verbose:
        stream = logging.StreamHandler(sys.stderr)
        stream.addFilter(lambda record: record.levelno < logging.WARNING)
        handlers.append(stream)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger.propagate, logger.handlers = False, handlers
    trace = sys.gettrace()
    try:
        yield collect
    finally:
        sys.settrace(trace)
        logger.setLevel(saved[0])
        logger.propagate, logger.handlers = saved[1], saved[2]


class AutoAttackLinf(Attack):
    """pyautoattack's ``AutoAttack`` (L-inf) behind the :class:`Attack` interface."""

    def __init__(self, name: str, model: nn.Module, eps: float, seed: int, params: dict[str, Any]) -> None:
        self.verbose = bool(params.pop("verbose", False))  # not in params: it does not change the result
        version = "rand" if name.endswith("rand") else "standard"
        defaults = {"attacks": None, "n_iter": 100, "n_queries": 5000, "eot_iter": 20 if version == "rand" else 1,
                    "batch_size": 250}
        params = resolve_params(name, defaults, params)
        self.explicit = params["attacks"] is not None
        attacks = list(VERSION_ATTACKS[version] if params["attacks"] is None else params["attacks"])
        unknown = [a for a in attacks if a not in SUB_ATTACKS]
        if unknown or not attacks:
            raise InputError(f"{name}: attacks must be a non-empty list drawn from {', '.join(SUB_ATTACKS)}; "
                             f"got {params['attacks']!r}")
        for key in ("n_iter", "n_queries", "eot_iter", "batch_size"):
            if not is_whole(params[key], 1):
                raise InputError(f"{name}: {key} must be a positive int, got {params[key]!r}")
        super().__init__(name, model, eps, seed, {"version": version, **params, "attacks": attacks})

    def _runnable(self, num_classes: int) -> list[str]:
        attacks = self.params["attacks"]
        too_few = [a for a in attacks if num_classes < MIN_CLASSES.get(a, 2)]
        if too_few and self.explicit:
            raise InputError(f"{self.name}: {', '.join(too_few)} need(s) more than {num_classes} classes "
                             f"(APGD-DLR: 3, APGD-T: 4, FAB: 2); choose other attacks")
        if too_few:
            warnings.warn(f"{self.name}: skipping {', '.join(too_few)}, which need(s) more than {num_classes} "
                          f"classes", RuntimeWarning, stacklevel=4)
        return [a for a in attacks if a not in too_few]

    def _perturb(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        p = self.params
        attacks = self._runnable(num_classes)
        if not attacks:
            return images.clone()
        aa = AutoAttack(self.model, norm="Linf", eps=self.eps, version=p["version"], seed=self.seed,
                        device=images.device)
        aa.verbose = self.verbose
        aa.attacks_to_run = attacks
        aa.apgd.n_iter = aa.apgd_targeted.n_iter = aa.fab.n_iter = p["n_iter"]
        aa.square.n_queries = p["n_queries"]
        aa.apgd.eot_iter = p["eot_iter"]
        aa.apgd_targeted.n_target_classes = aa.fab.n_target_classes = min(9, num_classes - 1)
        with _quiet_autoattack(self.verbose) as log:
            x_adv, _ = aa.run_standard_evaluation(images, labels, batch_size=p["batch_size"])
        for msg in log.messages:
            warnings.warn(f"AutoAttack: {msg}", RuntimeWarning, stacklevel=3)
        return x_adv


@ATTACKS.register("autoattack", defaults={"attacks": list(VERSION_ATTACKS["standard"]), "n_iter": 100,
                                          "n_queries": 5000, "eot_iter": 1, "batch_size": 250}, source="pyautoattack")
def autoattack(model: nn.Module, eps: float, seed: int, **params: Any) -> Attack:
    """AutoAttack, version 'standard' (APGD-CE, APGD-T, FAB-T, Square); Tables 2, 4-9."""
    return AutoAttackLinf("autoattack", model, eps, seed, params)


@ATTACKS.register("autoattack-rand", defaults={"attacks": list(VERSION_ATTACKS["rand"]), "n_iter": 100,
                                               "n_queries": 5000, "eot_iter": 20, "batch_size": 250},
                  source="pyautoattack")
def autoattack_rand(model: nn.Module, eps: float, seed: int, **params: Any) -> Attack:
    """AutoAttack, version 'rand' (APGD-CE, APGD-DLR with EOT over 20 passes) for randomized defenses; Table 5."""
    return AutoAttackLinf("autoattack-rand", model, eps, seed, params)
