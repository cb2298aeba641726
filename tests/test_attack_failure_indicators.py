"""Indicators of attack failure (issue 18): each fires on a pipeline built to defeat attacks in that way, and stays
quiet on a plain classifier; the evaluation reports them and marks the rows they concern."""

from __future__ import annotations

import json
import uuid

import pytest
import torch
from torch import nn

from irad.attacks import indicators as ind
from irad.classifiers import load_classifier
from irad.data import load_dataset
from irad.defenses import DEFENSES, defend, load_defense

pytestmark = pytest.mark.usefixtures("clean_env", "one_thread")
EPS = 8 / 255


class Quantise(nn.Module):
    """A defense that masks gradients: rounding to 5 grey levels has a zero derivative almost everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 4) / 4


@pytest.fixture(scope="module")
def data():
    x, y = load_dataset("cifar10", "test").tensors(6)
    return x, y


@pytest.fixture(scope="module")
def plain():
    return load_classifier("resnet20")


def test_no_indicator_fires_on_a_plain_classifier(plain, data):
    x, y = data
    found = {i.name: i for i in ind.pipeline_indicators(plain, x, y, EPS)}
    assert set(found) == {"masked gradients", "randomness", "unbounded attack", "loss not increasing",
                          "binarization test"}
    assert all(i.fired is False for i in found.values()), {k: i.message for k, i in found.items()}
    assert found["unbounded attack"].value == 0.0  # eps = 1 fools every image
    assert found["binarization test"].value == 1.0  # every separable binary task is solved


def test_masked_gradients_fire_the_gradient_unbounded_loss_and_binarization_indicators(plain, data):
    x, y = data
    masked = defend(plain, Quantise())
    found = {i.name: i for i in ind.pipeline_indicators(masked, x, y, EPS)}
    assert found["masked gradients"].fired and found["masked gradients"].value == 1.0
    assert found["unbounded attack"].fired  # PGD cannot move: the images stay correct even with eps = 1
    assert found["loss not increasing"].fired in (True, None)  # fired, or no correct image to test
    assert found["binarization test"].fired in (True, None)
    assert found["randomness"].fired is False  # rounding is deterministic


def test_a_randomized_defense_fires_the_randomness_indicator(plain, data):
    x, _ = data
    i = ind.randomness(defend(plain, load_defense("bilinear-sv")), x)
    assert i.fired and 0 < i.value <= 1


def test_row_indicators_compare_as_documented():
    assert ind.non_monotone_in_eps({2 / 255: 50.0, 4 / 255: 55.0, 8 / 255: 40.0}).fired
    assert not ind.non_monotone_in_eps({2 / 255: 50.0, 4 / 255: 45.0}).fired
    assert ind.non_monotone_in_eps({8 / 255: 40.0}).fired is None
    assert ind.black_box_beats_white_box(ra_black_box=20.0, ra_white_box=60.0).fired
    assert not ind.black_box_beats_white_box(ra_black_box=60.0, ra_white_box=20.0).fired
    assert ind.full_gradient_weaker_than_bpda(ra_full_gradient=70.0, ra_bpda=10.0).fired
    assert not ind.full_gradient_weaker_than_bpda(ra_full_gradient=5.0, ra_bpda=10.0).fired


def test_evaluation_reports_fired_indicators_and_marks_the_rows(tmp_path):
    from irad.evaluation import EvalConfig, evaluate

    name = f"test-quantise-{uuid.uuid4().hex[:8]}"
    DEFENSES.register(name)(lambda dataset="cifar10", **_: Quantise())
    try:
        cfg = EvalConfig(victims=["resnet20"], defenses=[name], attacks=["pgd:steps=3"],
                         threat_models=["full-gradient"], n_images=6, repeats=1, indicator_images=6)
        with pytest.warns(UserWarning):
            (row,) = evaluate(cfg, tmp_path / "ev", progress=False)
    finally:
        DEFENSES._entries.pop(name, None)
    assert "masked gradients" in row["attack_failure"] and "unbounded attack" in row["attack_failure"]
    saved = json.loads((tmp_path / "ev" / "results.json").read_text())
    checks = {c["check"]: c for c in saved["sanity"] if c["check"].startswith("attack-failure indicator")}
    assert checks["attack-failure indicator: masked gradients"]["ok"] is False
    assert saved["rows"][0]["attack_failure"] == row["attack_failure"]
    md = (tmp_path / "ev" / "results.md").read_text()
    assert "⚠" in md and "probably an upper bound" in md


def test_randomness_marks_the_rows_whose_attack_did_not_average_over_the_draws(tmp_path):
    """A randomized defense fires the randomness indicator; it marks the BPDA row of the paper's protocol (no EOT),
    not the row of an attack that ran EOT over the defense's draws."""
    from irad.evaluation import EvalConfig, evaluate

    cfg = EvalConfig(victims=["resnet20"], defenses=["bilinear-sv"], attacks=["pgd-paper", "pgd:steps=3"],
                     threat_models=["bpda"], n_images=6, repeats=2, eot_samples=2, indicator_images=6)
    with pytest.warns(UserWarning):
        rows = evaluate(cfg, tmp_path / "ev", progress=False)
    by_attack = {r["attack"]: r for r in rows}
    saved = json.loads((tmp_path / "ev" / "results.json").read_text())
    (check,) = [c for c in saved["sanity"] if c["check"] == "attack-failure indicator: randomness"]
    assert check["ok"] is False  # bilinear-sv's random shifts change predictions between passes
    assert by_attack["pgd-paper"]["eot_samples"] is None and "randomness" in by_attack["pgd-paper"]["attack_failure"]
    assert by_attack["pgd:steps=3"]["eot_samples"] == 2
    assert "randomness" not in by_attack["pgd:steps=3"]["attack_failure"]
