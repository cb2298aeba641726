"""What an evaluation computes: the models its specs name (built once) and one :class:`Setting` per result row,
with the keys that decide when a row or a cached attack can be reused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..attacks import THREAT_MODELS
from ..attacks.threat import ThreatModel
from ..defenses import DefenseInfo, defense_info
from .config import EvalConfig, load_classifier_spec, load_defense_spec, parse_spec, spec_label
from .store import setting_key


def short_sha(sha256: str | None) -> str:
    return sha256[:12] if sha256 else "-"


class Models:
    """Victims (and the transfer surrogate) and defenses of an evaluation, built from their specs once."""

    def __init__(self, dataset: str, device: torch.device) -> None:
        self.dataset, self.device = dataset, device
        self._victims: dict[str, torch.nn.Module] = {}
        self._defenses: dict[str, torch.nn.Module] = {}

    def victim(self, spec: str) -> torch.nn.Module:
        if spec not in self._victims:
            self._victims[spec] = load_classifier_spec(spec, self.dataset, self.device)
        return self._victims[spec]

    def defense(self, spec: str) -> torch.nn.Module:
        if spec not in self._defenses:
            self._defenses[spec] = load_defense_spec(spec, dataset=self.dataset, device=self.device)
        return self._defenses[spec]

    def victim_id(self, spec: str) -> str:
        """The spec with its weights' checksum: retrained weights never reuse stale rows or cached attacks."""
        return f"{spec}@{short_sha(self.victim(spec).weights_sha256)}"

    def defense_id(self, spec: str) -> str:
        return f"{spec}@{short_sha(self.info(spec).sha256)}"

    def info(self, spec: str) -> DefenseInfo:
        return defense_info(self.defense(spec))


@dataclass(frozen=True)
class Setting:
    """One result row: a victim x threat model x attack x ε x defense.

    ``attack`` is the spec as given, ``attack_used`` what runs (AutoAttack 'rand' for a randomized defense under
    full-gradient), ``eot`` the EOT passes of an adaptive attack (None otherwise), ``crafted_on`` the model the
    examples are crafted on (see :meth:`ThreatModel.crafted_on`); ``row_key`` names the row in ``results.json``,
    ``adv_key`` the cached adversarial examples, which all defenses of an oblivious or transfer attack share."""

    victim: str
    defense: str
    threat: ThreatModel
    attack: str
    attack_used: str
    eps: float
    eot: int | None
    crafted_on: str
    row_key: str
    adv_key: str

    @property
    def victim_name(self) -> str:
        """The architecture name of the victim spec (``resnet44`` of ``resnet44:weights=...``)."""
        return parse_spec(self.victim)[0]


def plan(cfg: EvalConfig, models: Models, eps_list: list[float], common: dict[str, Any]) -> list[Setting]:
    """Every row of the evaluation, in the order they are computed (victim, threat model, attack, ε, defense).
    ``common`` holds the key parts every row shares (dataset, split, image range and digest, seed, batch size)."""
    surrogate_id = models.victim_id(cfg.surrogate) if cfg.surrogate else None
    settings = []
    for victim in cfg.victims:
        for tm in cfg.threat_models:
            threat = THREAT_MODELS.get(tm).factory()
            for attack in cfg.attacks:
                name, params = parse_spec(attack)
                for eps in eps_list:
                    for defense in cfg.defenses:
                        used = threat.attack_name(name, models.defense(defense))
                        eot = threat.eot_samples_for(used, cfg.eot_samples) if threat.adaptive else None
                        crafted_on = threat.crafted_on(models.victim_id(victim), models.defense_id(defense),
                                                       surrogate_id)
                        row_key = setting_key(victim=models.victim_id(victim), defense=models.defense_id(defense),
                                              threat_model=tm, attack=attack, eps=eps, repeats=cfg.repeats,
                                              eot_samples=eot, crafted_on=crafted_on, **common)
                        adv_key = setting_key(crafted_on=crafted_on,
                                              threat_model=tm if threat.adaptive else "non-adaptive",
                                              attack=spec_label(used, params), eps=eps, eot_samples=eot, **common)
                        settings.append(Setting(victim, defense, threat, attack, spec_label(used, params), eps, eot,
                                                crafted_on, row_key, adv_key))
    return settings


def attacked_model(setting: Setting, models: Models, surrogate: str | None) -> torch.nn.Module:
    """The module the setting's attack differentiates (the threat model decides: victim, surrogate or pipeline)."""
    threat = setting.threat
    return threat.attacked_model(models.victim(setting.victim), models.defense(setting.defense),
                                 models.victim(surrogate) if threat.needs_surrogate else None,
                                 eot_samples=setting.eot or 1)
