"""Threat models of the paper's §6: which module the attack differentiates, and what is evaluated.

``THREAT_MODELS.build(name)`` returns a :class:`ThreatModel`. In every case the adversarial images are finally
classified by the victim ``classifier(defense(x_adv))``; the threat models differ in the module the attack sees:

* ``oblivious``: the bare classifier; the defense only sees the finished x_adv (Tables 2, 4, 10-12);
* ``transfer``: a different ``surrogate`` classifier (Tables 13-14);
* ``bpda``: ``classifier(BPDAWrapper(defense)(x))``, logits averaged over ``eot_samples`` passes (EOT) when the
  defense is randomized (Table 3);
* ``full-gradient``: the whole ``classifier(defense(x))`` with true gradients; "autoattack" becomes
  "autoattack-rand" for a randomized defense (Table 5).

>>> tm = THREAT_MODELS.build("bpda")
>>> attack = tm.build_attack(classifier, defense, "pgd", eps=8 / 255, steps=20)   # on tm.attacked_model(...)
>>> correct = tm.robust_correct(classifier, defense, images, labels, "pgd")      # victim on x_adv
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..defenses import DefendedClassifier, NoDefense, is_randomized
from ..errors import InputError
from ..registry import Registry
from ..utils.runtime import eval_mode
from .base import Attack, build_attack
from .bpda import BPDAWrapper, EOTWrapper


def _parts(classifier: nn.Module, defense: nn.Module | None) -> tuple[nn.Module, nn.Module]:
    if not isinstance(classifier, nn.Module):
        raise InputError(f"classifier must be an nn.Module, got {type(classifier).__name__}")
    if defense is None:
        defense = NoDefense()
    if not isinstance(defense, nn.Module):
        raise InputError(f"defense must be an nn.Module or None (no defense), got {type(defense).__name__}; "
                         f"build one with irad.load_defense(name)")
    return classifier, defense


@dataclass(frozen=True)
class ThreatModel:
    """Who the attacker sees. ``defense_after_crafting``: the attack never sees the defense, which is applied to
    the finished adversarial images (oblivious, transfer); otherwise the defense is part of the attacked module."""

    name: str
    defense_after_crafting: bool
    needs_surrogate: bool
    default_attack: str
    _attacked: Callable[[nn.Module, nn.Module, nn.Module | None, int], nn.Module] = field(repr=False)

    @property
    def adaptive(self) -> bool:
        """The attack differentiates through the defense (bpda, full-gradient): its examples belong to one
        (victim, defense) pair, and EOT applies to randomized defenses."""
        return not self.defense_after_crafting

    def crafted_on(self, victim: str, defense: str, surrogate: str | None = None) -> str:
        """What the adversarial examples are crafted on, as a cache key part: the victim (oblivious), the surrogate
        (transfer) or ``victim+defense`` (adaptive); the arguments are ids (names with weight checksums)."""
        if self.adaptive:
            return f"{victim}+{defense}"
        if self.needs_surrogate:
            if surrogate is None:
                raise InputError(f"the {self.name!r} threat model needs a surrogate classifier to craft on")
            return surrogate
        return victim

    def attacked_model(self, classifier: nn.Module, defense: nn.Module | None = None,
                       surrogate: nn.Module | None = None, eot_samples: int = 20) -> nn.Module:
        """The module the attack differentiates (``defense=None``: no defense)."""
        classifier, defense = _parts(classifier, defense)
        if self.needs_surrogate:
            if not isinstance(surrogate, nn.Module):
                raise InputError(f"the {self.name!r} threat model needs surrogate=<an nn.Module classifier other "
                                 f"than the victim> to craft the adversarial examples on")
            if surrogate is classifier:
                raise InputError("the surrogate is the victim classifier itself; that is the 'oblivious' threat model")
        elif surrogate is not None:
            raise InputError(f"the {self.name!r} threat model attacks the victim itself and takes no surrogate; use "
                             f"the 'transfer' threat model to craft on a surrogate classifier")
        return self._attacked(classifier, defense, surrogate, eot_samples)

    def eot_samples_for(self, attack: str, eot_samples: int) -> int:
        """EOT passes the attacked module averages: 1 for attacks that average over randomness themselves
        (AutoAttack 'rand' runs EOT with 20 samples inside APGD) and for protocols without EOT (``pgd-paper``),
        else ``eot_samples``."""
        from .library import NO_EOT_ATTACKS

        return 1 if attack in EOT_NATIVE_ATTACKS or attack in NO_EOT_ATTACKS else eot_samples

    def victim(self, classifier: nn.Module, defense: nn.Module | None = None) -> nn.Module:
        """``classifier(defense(.))``: what classifies the adversarial images, in every threat model."""
        return DefendedClassifier(*_parts(classifier, defense))

    def attack_name(self, attack: str, defense: nn.Module | None = None) -> str:
        """The attack actually run: under ``full-gradient``, "autoattack" on a randomized defense is
        "autoattack-rand" (EOT); otherwise ``attack`` unchanged."""
        if self.name == "full-gradient" and attack == "autoattack" and defense is not None and is_randomized(defense):
            return "autoattack-rand"
        return attack

    def build_attack(self, classifier: nn.Module, defense: nn.Module | None = None, attack: str | None = None,
                     surrogate: nn.Module | None = None, eot_samples: int = 20, eps: float = 8 / 255, seed: int = 0,
                     **params: Any) -> Attack:
        """The attack (default :attr:`default_attack`) bound to :meth:`attacked_model`."""
        name = self.attack_name(attack or self.default_attack, defense)
        model = self.attacked_model(classifier, defense, surrogate, self.eot_samples_for(name, eot_samples))
        return build_attack(name, model, eps, seed, **params)

    @torch.no_grad()
    def robust_correct(self, classifier: nn.Module, defense: nn.Module | None, images: torch.Tensor,
                       labels: torch.Tensor, attack: str | None = None, surrogate: nn.Module | None = None,
                       eot_samples: int = 20, eps: float = 8 / 255, seed: int = 0, **params: Any) -> torch.Tensor:
        """Bool mask: the victim still classifies the crafted adversarial image correctly (one pass)."""
        x_adv = self.build_attack(classifier, defense, attack, surrogate, eot_samples, eps, seed, **params)(
            images, labels)
        with eval_mode(self.victim(classifier, defense)) as victim:
            return victim(x_adv).argmax(1) == labels.to(x_adv.device)


THREAT_MODELS: Registry[ThreatModel] = Registry("threat model")
EOT_NATIVE_ATTACKS = frozenset({"autoattack-rand"})


def _with_eot(model: nn.Module, defense: nn.Module, eot_samples: int) -> nn.Module:
    """Average the logits over ``eot_samples`` passes when the defense is randomized (EOT, Athalye et al. 2018)."""
    return EOTWrapper(model, eot_samples) if is_randomized(defense) and eot_samples > 1 else model


def _bpda(classifier: nn.Module, defense: nn.Module, surrogate: nn.Module | None, eot_samples: int) -> nn.Module:
    return _with_eot(DefendedClassifier(classifier, BPDAWrapper(defense)), defense, eot_samples)


@THREAT_MODELS.register("oblivious")
def oblivious() -> ThreatModel:
    """Oblivious adversary: crafted on the bare classifier, then fed through the defense (Tables 2, 4, 10-12)."""
    return ThreatModel("oblivious", True, False, "autoattack", lambda c, d, s, n: c)


@THREAT_MODELS.register("transfer")
def transfer() -> ThreatModel:
    """Transfer attack: crafted on a different surrogate classifier, then defense + victim (Tables 13-14)."""
    return ThreatModel("transfer", True, True, "vmifgsm", lambda c, d, s, n: s)


@THREAT_MODELS.register("bpda")
def bpda() -> ThreatModel:
    """Adaptive BPDA: attack classifier(BPDA(defense)(x)), identity backward, EOT if randomized (Table 3)."""
    return ThreatModel("bpda", False, False, "pgd", _bpda)


@THREAT_MODELS.register("full-gradient")
def full_gradient() -> ThreatModel:
    """AutoAttack on the whole defended pipeline with true gradients; version 'rand' if randomized (Table 5). Other
    attacks on a randomized defense see the logits averaged over ``eot_samples`` passes (EOT)."""
    return ThreatModel("full-gradient", False, False, "autoattack",
                       lambda c, d, s, n: _with_eot(DefendedClassifier(c, d), d, n))
