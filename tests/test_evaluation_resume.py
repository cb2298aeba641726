"""A run killed inside an attack resumes from its finished batches and reaches the numbers of an unbroken run
(issue 18: "killed after 40 s left its cache empty, and the rerun started over without saying so"), and the
report defines its columns and names only the files it wrote."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from irad.attacks.base import Attack
from irad.evaluation import EvalConfig, evaluate
from irad.evaluation.report import markdown_table

pytestmark = pytest.mark.usefixtures("clean_env", "one_thread")

CFG = dict(victims=["resnet20"], defenses=["none"], attacks=["pgd:steps=3"], n_images=12, batch_size=4, repeats=1)


def _adv_files(folder):
    return sorted((folder / "cache").glob("adv-*.npz"))


def test_a_run_killed_inside_an_attack_resumes_from_its_finished_batches(tmp_path, monkeypatch, capsys):
    whole = evaluate(EvalConfig(**CFG), tmp_path / "whole", progress=False)
    real_call = Attack.__call__
    calls = {"n": 0}

    def dies_on_third_batch(self, images, labels):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_call(self, images, labels)

    monkeypatch.setattr(Attack, "__call__", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        evaluate(EvalConfig(**CFG), tmp_path / "killed", progress=False)
    partial = [p for p in _adv_files(tmp_path / "killed") if p.name.endswith(".partial.npz")]
    assert len(partial) == 1 and np.load(partial[0])["adv"].shape[0] == 8  # two finished batches were kept
    monkeypatch.setattr(Attack, "__call__", real_call)
    calls["n"] = 0
    counted = {"n": 0}

    def counting(self, images, labels):
        counted["n"] += 1
        return real_call(self, images, labels)

    monkeypatch.setattr(Attack, "__call__", counting)
    capsys.readouterr()
    resumed = evaluate(EvalConfig(**CFG), tmp_path / "killed", progress=True)
    assert counted["n"] == 1  # only the missing batch was attacked
    assert "resuming attack pgd:steps=3: 8 of 12 images done" in capsys.readouterr().out
    assert [p for p in _adv_files(tmp_path / "killed") if p.name.endswith(".partial.npz")] == []
    for key in ("clean_correct", "adv_correct", "max_linf"):
        assert resumed[0][key] == whole[0][key], key
    (done,) = _adv_files(tmp_path / "killed")
    (reference,) = _adv_files(tmp_path / "whole")
    assert torch.equal(torch.from_numpy(np.load(done)["adv"]), torch.from_numpy(np.load(reference)["adv"]))


def test_the_table_defines_its_columns():
    row = {"victim": "resnet32", "defense": "irad", "threat_model": "oblivious", "attack": "autoattack", "eps": 8 / 255,
           "n": 10, "repeats": 1, "SA": 90.0, "RA": 60.0, "Avg": 75.0, "ASR": 33.3, "defense_ms_per_image": 1.0,
           "device": "cpu"}
    text = markdown_table([row])
    for word in ("SA: standard accuracy", "RA: robust accuracy", "Avg: (SA + RA) / 2", "ASR: attack success rate"):
        assert word in text, word


def test_the_cli_names_only_the_files_it_wrote(tmp_path):
    from click.testing import CliRunner

    from irad.cli.main import cli

    result = CliRunner().invoke(cli, ["evaluate", "--victim", "resnet20", "--defense", "none", "--attack", "fgsm",
                                      "-n", "4", "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    assert "results.md, results.csv, results.json" in result.output
    assert "png" not in result.output  # one attack and one ε: no plot was drawn, so none is promised
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["rows"]


def test_randomized_defenses_report_the_worst_case_over_their_repeats(tmp_path):
    """RA_worst counts an image as robust only if every repeat classifies it correctly: recomputed here from the
    per-repeat predictions, with the seeds the runner documents: repeat r of the batch starting at image 0 under
    SeedSequence([seed + 1000 r, 0])."""
    from irad.classifiers import load_classifier
    from irad.data import load_dataset
    from irad.defenses import defend, load_defense
    from irad.utils import seed_everything

    cfg = EvalConfig(victims=["resnet20"], defenses=["bilinear-sv"], attacks=["fgsm"], n_images=16, repeats=3,
                     batch_size=16)
    (row,) = evaluate(cfg, tmp_path / "ev", progress=False)
    x, y = load_dataset("cifar10", "test").tensors(16)
    (adv_file,) = [p for p in (tmp_path / "ev" / "cache").glob("adv-*.npz")]
    adv = torch.from_numpy(np.load(adv_file)["adv"])
    model = defend(load_classifier("resnet20"), load_defense("bilinear-sv"))
    correct = []
    for r in range(3):
        seed_everything(int(np.random.SeedSequence([1000 * r, 0]).generate_state(1, np.uint32)[0]))
        with torch.no_grad():
            correct.append(model(adv).argmax(1) == y)
    correct = torch.stack(correct)
    assert row["adv_correct"] == int(correct.sum())
    assert row["adv_correct_all"] == int(correct.all(0).sum())
    assert row["RA_worst"] == pytest.approx(100 * float(correct.all(0).float().mean()))
    assert row["RA_worst"] <= row["RA"]
    assert "RA_worst" in markdown_table([row])
