"""The two named BPDA protocols of ``--preset table3`` (issue 18): the paper's (PGD, 10 x 1/255, no random start,
never EOT) and a strong one (PGD, 50 x 2/255, random start, EOT for randomized defenses), checked against
torchattacks' PGD built by hand with the same settings and against the threat model's EOT rule."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from torch import nn

from irad.attacks import THREAT_MODELS, build_attack
from irad.evaluation.presets import PRESETS

pytestmark = pytest.mark.usefixtures("clean_env", "one_thread")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10)).eval()


def test_pgd_paper_is_torchattacks_pgd_with_the_papers_settings():
    model = _model()
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(6) % 10
    ours = build_attack("pgd-paper", model, eps=8 / 255)
    assert {k: ours.params[k] for k in ("steps", "alpha", "random_start")} == {
        "steps": 10, "alpha": 1 / 255, "random_start": False}
    reference = torchattacks.PGD(model, eps=8 / 255, alpha=1 / 255, steps=10, random_start=False)
    torch.testing.assert_close(ours(x, y), reference(x, y), rtol=0, atol=0)  # no random start: deterministic


def test_pgd_strong_takes_fifty_steps_from_a_random_start():
    params = build_attack("pgd-strong", _model(), eps=8 / 255).params
    assert {k: params[k] for k in ("steps", "alpha", "random_start")} == {
        "steps": 50, "alpha": 2 / 255, "random_start": True}
    assert build_attack("pgd-strong", _model(), eps=8 / 255, steps=5).params["steps"] == 5  # still overridable


def test_only_the_strong_protocol_gets_eot_on_randomized_defenses():
    bpda = THREAT_MODELS.get("bpda").factory()
    assert bpda.eot_samples_for("pgd-paper", 8) == 1
    assert bpda.eot_samples_for("pgd-strong", 8) == 8
    assert PRESETS["table3"]["attacks"] == ["pgd-paper", "pgd-strong"]
