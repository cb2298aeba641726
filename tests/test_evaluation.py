"""The evaluation runner (``irad.evaluation.evaluate`` / ``merge_results``) and ``irad evaluate``, checked against
facts that do not come from the runner itself: a defense that outputs a constant image cannot be attacked; the
shipped ResNet-20 falls under PGD; accuracy computed here by hand; adversarial examples loaded back from the cache
lie in the eps-ball; resumed, cached and merged runs give the numbers of one uninterrupted run."""

from __future__ import annotations

import csv
import json
import math
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import irad
import irad.attacks
from irad.cli.main import cli
from irad.defenses import DEFENSES
from irad.errors import InputError, IradError, UnknownNameError
from irad.evaluation import EvalConfig, evaluate, merge_results
from irad.evaluation import crafting, sanity, scoring

pytestmark = pytest.mark.usefixtures("clean_env")

EPS = 8 / 255
# fields of a row that are wall-clock measurements, so legitimately differ between two identical runs
TIMING = {"attack_seconds", "defense_ms_per_image"}


# ---------------------------------------------------------------------------------------------- helpers/fixtures


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these tensors are tiny, and on a busy 2-core machine OpenMP's spinning threads make a
    ResNet-20 pass on 8 images ~30x slower than a single thread does."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def clean_images(n: int, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Shipped CIFAR-10 test images ``start .. start+n`` read straight from the dataset (not through the runner)."""
    return irad.load_dataset("cifar10", "test").tensors(n, start)


@pytest.fixture(scope="module")
def resnet20() -> nn.Module:
    return irad.load_classifier("resnet20", weights="default")


class ConstantImage(nn.Module):
    """Maps every image to one fixed image (shipped test image 0): an attack cannot change what the classifier
    sees, so every image is classified the same way before and after any attack."""

    randomized = False

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("image", clean_images(1)[0][:1].clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.image.expand(images.shape[0], -1, -1, -1).clone()


@pytest.fixture(scope="module")
def constant_defense() -> str:
    """A unique registry name for :class:`ConstantImage`, removed again after this module."""
    name = f"test-constant-{uuid.uuid4().hex[:8]}"
    DEFENSES.register(name)(lambda dataset="cifar10", **_: ConstantImage())
    yield name
    DEFENSES._entries.pop(name, None)


def run(tmp: Path, **cfg) -> list[dict]:
    cfg.setdefault("n_images", 8)
    cfg.setdefault("eps", [EPS])
    cfg.setdefault("attacks", ["fgsm"])
    cfg.setdefault("defenses", ["none"])
    cfg.setdefault("victims", ["resnet20"])
    return evaluate(EvalConfig(**cfg), tmp, device="cpu", progress=False)


def by_defense(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for r in rows:
        assert r["defense"] not in out, "one row per defense expected here"
        out[r["defense"]] = r
    return out


def cache_files(out: Path) -> set[str]:
    return {p.name for p in (out / "cache").glob("adv-*.npz")}


def stable(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMING}


@pytest.fixture
def spy(monkeypatch):
    """Counts attack builds (``irad.attacks.build_attack``, which the runner imports at call time) and the
    defenses the runner scores images with (``scoring.defended_correct``)."""

    class Spy:
        attacks: list[str] = []
        scored: list[str] = []

    real_build, real_correct = irad.attacks.build_attack, scoring.defended_correct

    def build(name, *args, **kwargs):
        Spy.attacks.append(name)
        return real_build(name, *args, **kwargs)

    def correct(model, *args, **kwargs):
        Spy.scored.append(getattr(model.defense, "defense_name", type(model.defense).__name__))
        return real_correct(model, *args, **kwargs)

    Spy.attacks, Spy.scored = [], []
    monkeypatch.setattr(irad.attacks, "build_attack", build)
    monkeypatch.setattr(scoring, "defended_correct", correct)
    return Spy


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    """One run with 2 eps x 2 attacks x 2 defenses x {oblivious, bpda}, shared by the report and cache tests."""
    out = tmp_path_factory.mktemp("multi")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("IRAD_DATA", raising=False)
        mp.setenv("IRAD_HOME", str(tmp_path_factory.mktemp("irad_home")))
        rows = run(out, eps=[4 / 255, EPS], attacks=["fgsm", "pgd:steps=3"], defenses=["none", "bilinear-si"],
                   threat_models=["oblivious", "bpda"])
    return out, rows


# ------------------------------------------------------------------------------------------------ known facts


def test_constant_defense_has_equal_sa_and_ra(tmp_path, resnet20, constant_defense):
    with pytest.warns(UserWarning, match="gradient"):  # the constant defense has no input gradient at all
        rows = run(tmp_path, attacks=["fgsm", "pgd:steps=5"], defenses=[constant_defense])
    x, y = clean_images(8)
    with torch.no_grad():
        const_class = int(resnet20(clean_images(1)[0]).argmax(1))
    expected_sa = 100.0 * float((y == const_class).float().mean())
    assert len(rows) == 2 and {r["attack"] for r in rows} == {"fgsm", "pgd:steps=5"}
    for r in rows:
        assert r["defense"] == constant_defense and r["threat_model"] == "oblivious" and r["n"] == 8
        assert r["clean_correct"] == r["adv_correct"]
        assert r["SA"] == r["RA"] == pytest.approx(expected_sa)
        assert r["asr_num"] == 0
        assert 0 < r["max_linf"] <= EPS + 1e-6  # the attack did perturb the images; it just cannot matter
    sanity = json.loads((tmp_path / "results.json").read_text())["sanity"]
    grad = [c for c in sanity if c.get("defense") == constant_defense]
    assert len(grad) == 1 and grad[0]["ok"] is False and grad[0]["zero_fraction"] == 1.0


def test_undefended_resnet20_falls_under_pgd(tmp_path, resnet20):
    rows = run(tmp_path, eps=[4 / 255, EPS], attacks=["pgd:steps=10"], defenses=["none", "bilinear-si"])
    x, y = clean_images(8)
    with torch.no_grad():
        plain = resnet20(x).argmax(1) == y
    none = {r["eps"]: r for r in rows if r["defense"] == "none"}
    assert set(none) == {4 / 255, EPS}
    row = none[EPS]
    assert row["SA"] == pytest.approx(100.0 * float(plain.float().mean()))
    assert row["clean_correct"] == int(plain.sum()) > 0
    assert row["RA"] == 0.0 and row["adv_correct"] == 0
    assert row["ASR"] == 100.0
    assert row["evaluations"] == 8 and row["repeats"] == 1 and row["victim"] == "resnet20"
    assert 0 < row["max_linf"] <= EPS + 1e-6
    sanity = json.loads((tmp_path / "results.json").read_text())["sanity"]
    grads = [c for c in sanity if c["check"].startswith("gradients")]
    assert [c["defense"] for c in grads] == ["bilinear-si"]  # bilinear resampling is differentiable
    assert grads[0]["ok"] is True and grads[0]["finite"] is True and grads[0]["zero_fraction"] < 0.5
    eps_checks = [c for c in sanity if c["check"] == "RA does not rise with eps"]
    assert len(eps_checks) == 2 and all(c["ok"] for c in eps_checks)
    assert all(c["ok"] is True for c in sanity)


def test_randomized_defense_is_evaluated_repeats_times(tmp_path):
    x, _ = clean_images(4)
    sv, si = irad.load_defense("bilinear-sv"), irad.load_defense("bilinear-si")
    torch.manual_seed(1)
    a = sv(x)
    torch.manual_seed(2)
    assert not torch.equal(a, sv(x))  # random: needs several evaluations
    assert torch.equal(si(x), si(x))  # deterministic: one evaluation is exact
    rows = by_defense(run(tmp_path, n_images=4, defenses=["bilinear-sv", "bilinear-si"], repeats=2))
    assert rows["bilinear-sv"]["evaluations"] == 8 and rows["bilinear-sv"]["repeats"] == 2
    assert rows["bilinear-si"]["evaluations"] == 4 and rows["bilinear-si"]["repeats"] == 1
    for r in rows.values():
        assert 0 <= r["clean_correct"] <= r["evaluations"] and 0 <= r["adv_correct"] <= r["evaluations"]
        assert r["SA"] == pytest.approx(100.0 * r["clean_correct"] / r["evaluations"])
        assert r["RA"] == pytest.approx(100.0 * r["adv_correct"] / r["evaluations"])


# -------------------------------------------------------------------------------------------- cache and resume


def test_cached_adversarials_lie_in_the_eps_ball(multi):
    out, _ = multi
    files = sorted((out / "cache").glob("adv-*.npz"))
    assert files
    dataset = irad.load_dataset("cifar10", "test")
    seen_eps, largest = set(), 0.0
    for path in files:
        with np.load(path) as f:
            key, adv = json.loads(str(f["key"])), torch.from_numpy(f["adv"]).double()
        x, _ = dataset.tensors(key["n"], key["start"])
        assert adv.shape == x.shape == (8, 3, 32, 32)
        assert torch.isfinite(adv).all()
        assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
        dist = float((adv - x.double()).abs().max())
        assert dist <= key["eps"] + 1e-6, (path.name, dist, key)
        seen_eps.add(key["eps"])
        largest = max(largest, dist / key["eps"])
    assert seen_eps == {4 / 255, EPS}
    assert largest > 0.9  # the attacks really used their budget (the check above is not vacuous)


def test_adaptive_adversarials_are_cached_per_defense(multi):
    out, rows = multi
    assert len(rows) == 2 * 2 * 2 * 2
    # oblivious: one file per (attack, eps) shared by both defenses; bpda: one per (defense, attack, eps)
    assert len(cache_files(out)) == 2 * 2 + 2 * 2 * 2


def test_added_defense_reuses_cached_attacks_and_rows(tmp_path, spy, constant_defense):
    first = by_defense(run(tmp_path))
    assert spy.attacks == ["fgsm"] and spy.scored == ["none", "none"]  # clean + adversarial
    files = cache_files(tmp_path)
    assert len(files) == 1
    assert not list(tmp_path.glob("*.png"))  # one eps and one attack: nothing to plot
    spy.attacks.clear()
    spy.scored.clear()
    with pytest.warns(UserWarning, match="gradient"):
        second = by_defense(run(tmp_path, defenses=["none", constant_defense]))
    assert spy.attacks == []  # the oblivious attack was not run again
    assert cache_files(tmp_path) == files  # and no new adversarial file was written
    assert "none" not in spy.scored and spy.scored.count(constant_defense) == 2  # only the new row was computed
    assert second["none"] == first["none"]  # timings included: the row was kept, not recomputed
    assert set(second) == {"none", constant_defense}
    stored = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert len(stored) == 2


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch, spy, constant_defense):
    cfg = dict(defenses=["none", "bilinear-si", constant_defense], attacks=["fgsm"], n_images=8)
    calls = {"n": 0}
    real_time = scoring.time_defense

    def killed_on_second_row(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_time(*args, **kwargs)

    killed = tmp_path / "killed"
    with monkeypatch.context() as mp:
        mp.setattr(scoring, "time_defense", killed_on_second_row)
        with pytest.raises(KeyboardInterrupt):
            run(killed, **cfg)
    saved = json.loads((killed / "results.json").read_text())["rows"]
    assert [r["defense"] for r in saved] == ["none"]  # the finished row survived the kill

    spy.attacks.clear()
    spy.scored.clear()
    with pytest.warns(UserWarning, match="gradient"):
        resumed = run(killed, **cfg)
    assert spy.attacks == []  # the adversarial examples of the killed run were reused
    assert "none" not in spy.scored  # the finished row was not recomputed
    with pytest.warns(UserWarning, match="gradient"):
        fresh = run(tmp_path / "fresh", **cfg)
    assert len(resumed) == len(fresh) == 3
    assert {r["key"]: stable(r) for r in resumed} == {r["key"]: stable(r) for r in fresh}


# ------------------------------------------------------------------------------------------------------- merge


def test_merge_of_disjoint_ranges_equals_one_run(tmp_path):
    # exactly, random draws included (PGD's random start, bilinear-sv's random shifts): the ranges start on batch
    # boundaries, attacks reseed per batch and randomized defenses are scored per (repeat, batch's first image)
    cfg = dict(defenses=["none", "bilinear-si", "bilinear-sv"], attacks=["pgd:steps=2"], batch_size=8, repeats=2)
    run(tmp_path / "a", n_images=8, start=0, **cfg)
    run(tmp_path / "b", n_images=8, start=8, **cfg)
    whole = by_defense(run(tmp_path / "whole", n_images=16, start=0, **cfg))
    merged = by_defense(merge_results([tmp_path / "a", tmp_path / "b"], tmp_path / "merged"))
    assert set(merged) == set(whole) == {"none", "bilinear-si", "bilinear-sv"}
    for d, w in whole.items():
        m = merged[d]
        assert (m["start"], m["n"]) == (0, 16)
        for f in ("clean_correct", "adv_correct", "evaluations", "asr_num", "asr_den", "adv_correct_all"):
            assert m[f] == w[f], (d, f)
        for f in ("SA", "RA", "Avg", "ASR"):
            assert m[f] == pytest.approx(w[f]), (d, f)
    assert whole["none"]["evaluations"] == 16 and whole["bilinear-sv"]["evaluations"] == 32
    assert (tmp_path / "merged" / "results.md").is_file() and (tmp_path / "merged" / "results.csv").is_file()
    md = (tmp_path / "merged" / "results.md").read_text()
    assert "Merged from 2 runs" in md and "exactly when every run's --start is a multiple of the batch size" in md
    assert md.count("defense=bilinear-si") == 2  # each run's sanity checks are carried over
    with pytest.raises(InputError, match="overlap"):
        merge_results([tmp_path / "whole", tmp_path / "b"], tmp_path / "bad")
    with pytest.raises(InputError, match="overlap"):
        merge_results([tmp_path / "a", tmp_path / "a"], tmp_path / "bad2")


def test_merge_keeps_settings_apart_that_differ_beyond_the_image_range(tmp_path):
    run(tmp_path / "a", n_images=4, start=0, repeats=1)
    run(tmp_path / "b", n_images=4, start=4, repeats=2)  # another setting (repeats) on disjoint images
    with pytest.warns(UserWarning, match="not combined"):
        merged = merge_results([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")
    assert sorted(r["n"] for r in merged) == [4, 4]
    assert "Rows that look alike were NOT combined" in (tmp_path / "merged" / "results.md").read_text()


class TrainedAgainstResNet20(ConstantImage):
    """A stand-in for a trained defense whose sidecar says it was trained against ResNet-20."""

    def __init__(self, sha: str) -> None:
        super().__init__()
        self.meta = {"trained_against": ["resnet20"], "sha256": sha}


def test_rows_name_the_weights_and_flag_a_victim_the_defense_was_trained_against(tmp_path):
    name = f"test-trained-{uuid.uuid4().hex[:8]}"
    sha = {"value": "a" * 64}
    DEFENSES.register(name)(lambda dataset="cifar10", **_: TrainedAgainstResNet20(sha["value"]))
    try:
        with pytest.warns(UserWarning, match="trained against"):
            rows = by_defense(run(tmp_path, n_images=4, defenses=["none", name]))
        assert rows[name]["victim_in_training"] and not rows["none"]["victim_in_training"]
        assert rows[name]["defense_weights"] == "a" * 64
        assert rows[name]["victim_weights"] == irad.load_classifier("resnet20", weights="default").weights_sha256
        assert "†" in (tmp_path / "results.md").read_text()
        sha["value"] = "b" * 64  # retrained weights under the same defense name: a new row, not the stored one
        with pytest.warns(UserWarning):
            again = by_defense(run(tmp_path, n_images=4, defenses=[name]))
        assert again[name]["defense_weights"] == "b" * 64 and again[name]["key"] != rows[name]["key"]
    finally:
        DEFENSES._entries.pop(name, None)


# ----------------------------------------------------------------------------------------------------- reports


def test_a_non_differentiable_defense_is_reported_not_fatal(tmp_path):
    rows = by_defense(run(tmp_path, n_images=4, defenses=["none", "jpeg"]))
    assert rows["jpeg"]["evaluations"] == 4
    checks = json.loads((tmp_path / "results.json").read_text())["sanity"]
    jpeg = [c for c in checks if c.get("defense") == "jpeg"]
    # not differentiable is a fact about the defense, not a failed check: "n/a", with what to do instead
    assert len(jpeg) == 1 and jpeg[0]["ok"] is None and "bpda" in jpeg[0]["note"]
    md = (tmp_path / "results.md").read_text()
    assert "- [n/a] gradients through the defense are finite and non-zero: defense=jpeg" in md
    assert "FAILED" not in md


def test_a_failing_gradient_probe_is_a_failed_check_not_n_a(tmp_path, monkeypatch):
    """Only a defense that refuses gradients is "n/a"; any other error of the probe stays a failed check, with it."""
    def refuse(*args, **kwargs):
        raise InputError("labels out of range")

    monkeypatch.setattr(irad.attacks, "gradient_health", refuse)
    run(tmp_path, n_images=4, defenses=["none", "bit-reduction"])
    checks = json.loads((tmp_path / "results.json").read_text())["sanity"]
    probe = [c for c in checks if c.get("defense") == "bit-reduction"]
    assert len(probe) == 1 and probe[0]["ok"] is False and "labels out of range" in probe[0]["note"]


def test_partial_weights_are_flagged(tmp_path):
    """A defense whose weights' training stopped early (steps_done < steps_planned in its metadata) is a failed
    check in the report, not a silent row."""
    name = f"test-partial-{uuid.uuid4().hex[:8]}"

    def partial(dataset="cifar10", **_):
        module = ConstantImage()
        module.meta = {"steps_done": 97, "steps_planned": 125}
        return module

    DEFENSES.register(name)(partial)
    try:
        run(tmp_path, n_images=4, defenses=["none", name])
    finally:
        DEFENSES._entries.pop(name, None)
    checks = json.loads((tmp_path / "results.json").read_text())["sanity"]
    flagged = [c for c in checks if c["check"] == "the defense's weights come from a finished training run"]
    assert len(flagged) == 1 and flagged[0]["ok"] is False and "step 97 of 125" in flagged[0]["note"]


def test_sanity_checks_flag_robust_accuracy_above_standard_accuracy():
    def row(defense, sa, ra):
        return {"victim": "v", "defense": defense, "threat_model": "bpda", "attack": "pgd", "eps": EPS,
                "SA": sa, "RA": ra, "evaluations": 200}

    rows = [row("shift", 83.0, 93.5), row("fine", 83.0, 83.5), row("none", 10.0, 50.0)]
    with pytest.warns(UserWarning, match="RA not above SA"):
        checks = sanity.sanity_checks(rows, EvalConfig(defenses=["none"]), None, None, None, "cpu")
    flagged = [c for c in checks if c["check"].startswith("RA not above SA")]
    assert [c["defense"] for c in flagged] == ["shift"]  # 83.5 is within one image of 83.0; 'none' is not judged
    assert "full-gradient" in flagged[0]["hint"]


def test_reports_are_written(multi):
    out, rows = multi
    for name in ("results.md", "results.csv", "results.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    with open(out / "results.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    expected = {"victim", "defense", "threat_model", "attack", "eps", "n", "repeats", "SA", "RA", "Avg", "ASR",
                "clean_correct", "adv_correct", "evaluations"}
    assert expected <= set(table[0])
    assert len(table) == 16
    assert {(t["defense"], t["threat_model"], t["attack"]) for t in table} == {
        (d, tm, a) for d in ("none", "bilinear-si") for tm in ("oblivious", "bpda") for a in ("fgsm", "pgd:steps=3")}
    for t in table:
        assert t["victim"] == "resnet20" and int(t["n"]) == 8
        assert float(t["eps"]) in (pytest.approx(4 / 255), pytest.approx(EPS))
        assert float(t["SA"]) == pytest.approx(100.0 * int(t["clean_correct"]) / int(t["evaluations"]))
        assert float(t["RA"]) == pytest.approx(100.0 * int(t["adv_correct"]) / int(t["evaluations"]))
    md = (out / "results.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(lines) == 2 + 16 and "SA" in lines[0] and "RA" in lines[0]
    assert "8/255" in md and "4/255" in md
    stored = json.loads((out / "results.json").read_text())
    assert len(stored["rows"]) == 16 and stored["config"]["n_images"] == 8
    for png in ("ra_vs_eps.png", "per_attack.png"):  # two eps, two attacks
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------ bad arguments


def test_merged_results_state_their_image_ranges(tmp_path):
    """A merge of images 0..3 and 8..11 says so, rather than "0..7"; adjacent ranges join."""
    from irad.evaluation.store import coalesce as _coalesce

    assert _coalesce([[10, 19], [0, 9], [50, 59]]) == [[0, 19], [50, 59]]
    run(tmp_path / "a", n_images=4, start=0)
    run(tmp_path / "b", n_images=4, start=8)
    merge_results([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    assert "images 0..3, 8..11 (n = 8)" in (tmp_path / "m" / "results.md").read_text()


def test_transfer_surrogate_is_checked_before_any_attack_runs(tmp_path, spy):
    with pytest.raises(IradError, match="resnet99"):
        run(tmp_path, threat_models=["oblivious", "transfer"], surrogate="resnet99")
    assert spy.attacks == []


def test_results_md_states_the_setting_of_its_numbers(tmp_path):
    """results.md says which images, seed and threat model its numbers belong to, and names a transfer surrogate."""
    run(tmp_path / "a", n_images=4, start=3, defenses=["none"], attacks=["fgsm"], threat_models=["oblivious"])
    md = (tmp_path / "a" / "results.md").read_text()
    assert md.startswith("Setting: cifar10/test images 3..6 (n = 4), seed 0. Threat model: oblivious (attacks "
                         "crafted on the bare victim, then purified).")
    run(tmp_path / "b", n_images=4, defenses=["none"], attacks=["fgsm"], threat_models=["transfer"],
        surrogate="resnet32")
    md = (tmp_path / "b" / "results.md").read_text()
    assert "transfer (attacks crafted on the surrogate resnet32@" in md


def test_reports_state_that_the_adversarial_examples_stay_in_the_eps_ball(tmp_path):
    rows = run(tmp_path, n_images=4, attacks=["pgd:steps=2"])
    assert all(r["max_linf"] <= r["eps"] + 1e-6 for r in rows)  # independently of the check itself
    checks = json.loads((tmp_path / "results.json").read_text())["sanity"]
    ball = [c for c in checks if c["check"].startswith("adversarial examples within the ε-ball")]
    assert len(ball) == 1 and ball[0]["ok"] and ball[0]["rows"] == len(rows)
    assert "[ok] adversarial examples within the ε-ball (L-inf, up to 1e-06" in (tmp_path / "results.md").read_text()


def test_report_numbers_keep_their_size():
    """Tiny values (a float-rounding excess over ε) are not shown as 0.0000."""
    from irad.evaluation.report import _fmt

    assert (_fmt(2.8e-08), _fmt(0.0065), _fmt(12.5), _fmt(0.0)) == ("2.8e-08", "0.0065", "12.50", "0.00")


def test_rows_record_the_eot_passes_actually_averaged(tmp_path):
    """BPDA with --eot-samples 2: a randomized defense's row records 2, a deterministic one's none (its passes would
    all be the same), and the setting line speaks of the randomized defenses only."""
    rows = by_defense(run(tmp_path, n_images=4, defenses=["none", "bilinear-sv"], threat_models=["bpda"],
                          eot_samples=2, repeats=1))
    assert rows["bilinear-sv"]["eot_samples"] == 2 and rows["none"]["eot_samples"] is None
    assert "EOT over 2 passes for randomized defenses" in (tmp_path / "results.md").read_text()


def test_paper_figures_appear_only_beside_rows_measured_as_the_paper_did():
    from irad.evaluation.presets import PAPER, paper_figures

    assert paper_figures("table8", "irad", "autoattack", "oblivious") == PAPER["table8"]["irad"]
    assert paper_figures("table8", "irad", "fgsm", "oblivious") == (None, None)  # another attack
    assert paper_figures("table8", "irad", "autoattack", "bpda") == (None, None)  # another threat model
    assert paper_figures("table3", "irad", "pgd-paper", "bpda") == PAPER["table3"]["irad"]  # the paper's protocol
    assert paper_figures("table3", "irad", "pgd-strong", "bpda") == (None, None)  # a stronger one: no paper figure
    assert paper_figures("fig4", "irad", "pgd", "oblivious")[1] == 89.94
    assert paper_figures(None, "irad", "autoattack", "oblivious") == (None, None)


def test_per_attack_bars_show_single_rows_never_averages():
    """Each bar is one row's RA: rows at two ε give two series, a combination not run gives no bar (NaN), not 0."""
    from irad.evaluation.report import per_attack_bars

    def row(defense, attack, eps, ra):
        return {"defense": defense, "attack": attack, "eps": eps, "RA": ra, "victim": "resnet20",
                "threat_model": "oblivious"}

    rows = [row("none", "fgsm", 4 / 255, 50.0), row("none", "fgsm", 8 / 255, 25.0),
            row("none", "pgd", 8 / 255, 10.0), row("irad", "fgsm", 8 / 255, 70.0)]
    attacks, bars = per_attack_bars(rows)
    assert attacks == ["fgsm", "pgd"]
    assert set(bars) == {"none (ε=4/255)", "none (ε=8/255)", "irad (ε=8/255)"}
    assert bars["none (ε=8/255)"] == [25.0, 10.0] and bars["irad (ε=8/255)"][0] == 70.0
    assert bars["none (ε=4/255)"][0] == 50.0 and math.isnan(bars["none (ε=4/255)"][1])
    assert math.isnan(bars["irad (ε=8/255)"][1])
    _, single = per_attack_bars([row("none", "fgsm", 8 / 255, 25.0), row("none", "pgd", 8 / 255, 10.0)])
    assert single == {"none": [25.0, 10.0]}  # nothing varies: the series is just the defense
    # merged runs that differ only in their seed stay two series, neither overwrites the other
    seeded = [{**row("none", "fgsm", 8 / 255, ra), "seed": seed} for seed, ra in ((0, 25.0), (1, 30.0))]
    assert per_attack_bars(seeded)[1] == {"none (seed 0)": [25.0], "none (seed 1)": [30.0]}


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="surrogate"):
        run(tmp_path / "t", threat_models=["transfer"])
    with pytest.raises(UnknownNameError):
        run(tmp_path / "u", threat_models=["obliviuos"])
    with pytest.raises(UnknownNameError, match="no-such-defense"):
        run(tmp_path / "d", defenses=["no-such-defense"])
    with pytest.raises(UnknownNameError):
        run(tmp_path / "a", attacks=["no-such-attack"])
    for start in (1000, 5000):  # the shipped sample holds test images 0..999
        with pytest.raises(InputError):
            run(tmp_path / f"s{start}", start=start, n_images=4)


def test_a_typo_in_a_later_spec_is_refused_before_any_attack_runs(tmp_path, spy):
    for kwargs, match in (({"attacks": ["fgsm", "pgd:steps=2", "fgsmm"]}, "fgsmm"),
                          ({"attacks": ["fgsm", "pgd:stpes=2"]}, "stpes"),
                          ({"defenses": ["none", "jpeg:qualty=50"]}, "qualty"),
                          ({"victims": ["resnet20", "resnet21"]}, "resnet21")):
        with pytest.raises(IradError, match=match):
            run(tmp_path / match, **kwargs)
        assert spy.attacks == [] and spy.scored == [] and not (tmp_path / match / "results.json").exists()


def test_full_gradient_on_a_defense_without_gradients_is_refused_before_any_attack(tmp_path, spy):
    with pytest.raises(InputError, match="'jpeg' cannot be attacked under the full-gradient threat model"):
        run(tmp_path, defenses=["none", "jpeg"], threat_models=["full-gradient"])
    assert spy.attacks == [] and not (tmp_path / "results.json").exists()


def test_more_images_than_the_split_holds_is_refused_not_cut(tmp_path):
    """-n beyond the split is an error naming the split's size, not a silently shorter run (whose reports would then
    disagree about n)."""
    with pytest.raises(InputError, match=r"has 1000 images; lower -n \(at most 10 from --start 990\)"):
        run(tmp_path, start=990, n_images=20)


def test_negative_start_is_rejected(tmp_path):
    with pytest.raises(InputError):
        run(tmp_path, start=-2, n_images=4)


def test_changed_repeats_is_not_served_from_old_rows(tmp_path):
    run(tmp_path, n_images=4, defenses=["bilinear-sv"], repeats=1)
    (row,) = run(tmp_path, n_images=4, defenses=["bilinear-sv"], repeats=2)
    assert row["repeats"] == 2 and row["evaluations"] == 8


# ---------------------------------------------------------------------------------------------------------- CLI


def test_cli_evaluate_prints_a_markdown_table(tmp_path):
    out = tmp_path / "cli"
    try:  # stdout alone (the progress bar goes to stderr); click 8.1 mixes them unless told not to
        cli_runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2: result.stdout is stdout only
        cli_runner = CliRunner()
    result = cli_runner.invoke(cli, ["evaluate", "-n", "4", "--defense", "none", "--attack", "fgsm", "--out",
                                     str(out)])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("|")]
    assert len(lines) == 3
    assert lines[0].startswith("| victim | defense |") and "| SA | RA |" in lines[0]
    assert set(lines[1]) == {"|", "-"}
    assert lines[2].startswith("| resnet32 | none | oblivious | fgsm | 8/255 | 4 |")  # the default victim
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["n"] == 4 and rows[0]["eps"] == pytest.approx(EPS)


def test_cli_rejects_a_bad_eps(tmp_path):
    result = CliRunner().invoke(cli, ["evaluate", "-n", "4", "--defense", "none", "--attack", "fgsm", "--eps", "abc",
                                      "--out", str(tmp_path / "cli")])
    assert result.exit_code == 2
    assert "abc" in result.output and "8/255" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "cli" / "results.json").exists()


def test_cli_rejects_a_zero_denominator_eps(tmp_path):
    result = CliRunner().invoke(cli, ["evaluate", "-n", "4", "--defense", "none", "--attack", "fgsm", "--eps", "8/0",
                                      "--out", str(tmp_path / "cli")])
    assert result.exit_code == 2 and "8/0" in result.output


# --------------------------------------------------------------------------------- keys, EOT, ASR, spec syntax


def test_other_images_under_the_same_name_never_reuse_rows_or_attacks(tmp_path, spy):
    """Same dataset name, split, range and seed, but a data folder whose test images differ: a new attack run."""
    x, y = clean_images(8)
    data = tmp_path / "data" / "cifar10"
    data.mkdir(parents=True)
    flipped = (x.flip(-1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # other images, same labels
    np.savez(data / "test.npz", images=flipped, labels=y.numpy())
    first = run(tmp_path / "out")
    second = evaluate(EvalConfig(n_images=8, eps=[EPS], attacks=["fgsm"], defenses=["none"], victims=["resnet20"]),
                      tmp_path / "out", data_root=tmp_path / "data", device="cpu", progress=False)
    assert spy.attacks == ["fgsm", "fgsm"]  # the second run crafted its own examples
    assert first[0]["images"] != second[0]["images"]
    assert len(json.loads((tmp_path / "out" / "results.json").read_text())["rows"]) == 2  # both rows kept


def test_a_cached_attack_that_does_not_fit_the_images_is_refused(tmp_path):
    from irad.attacks.checks import AttackError

    x, y = clean_images(4)
    cache = crafting.AdvCache(tmp_path)
    cache.put("k", (x + 0.5).clamp(0, 1), 1.0)  # e.g. another data folder's examples under the same key
    with pytest.raises(AttackError):
        crafting.craft("fgsm", irad.load_classifier("resnet20"), x, y, EPS, 0, 4, torch.device("cpu"), cache, "k")


class CoinFlip(nn.Module):
    """Randomized: with probability 1/2 (one draw per call from torch's global generator) the identity, else
    test image 0 for every input."""

    randomized = True

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("image", clean_images(1)[0][:1].clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if float(torch.rand(())) < 0.5:
            return images
        return self.image.expand(images.shape[0], -1, -1, -1).clone()


def test_asr_pairs_clean_and_adversarial_evaluations_of_the_same_repeat(tmp_path, resnet20):
    name = f"test-coin-{uuid.uuid4().hex[:8]}"
    DEFENSES.register(name)(lambda dataset="cifar10", **_: CoinFlip())
    try:
        # a weak attack: many images survive it, so clean and adversarial failures fall in different repeats
        (row,) = run(tmp_path, defenses=[name], repeats=4, batch_size=8, eps=[1 / 255])
    finally:
        DEFENSES._entries.pop(name, None)
    # the same evaluations by hand: repeat r draws one coin under the seed of (1000 r, batch starting at image 0),
    # for the clean and the adversarial pass
    x, y = clean_images(8)
    with np.load(next((tmp_path / "cache").glob("adv-*.npz"))) as f:
        adv = torch.from_numpy(f["adv"])
    coin = CoinFlip()
    with torch.no_grad():
        def correct(images, r):
            irad.utils.seed_everything(int(np.random.SeedSequence([1000 * r, 0]).generate_state(1, np.uint32)[0]))
            return (resnet20(coin(images)).argmax(1) == y).numpy()
        clean = np.stack([correct(x, r) for r in range(4)])
        adv_ok = np.stack([correct(adv, r) for r in range(4)])
    assert row["evaluations"] == 32 and row["clean_correct"] == clean.sum() and row["adv_correct"] == adv_ok.sum()
    assert row["asr_den"] == clean.sum() and row["asr_num"] == (clean & ~adv_ok).sum()
    # the setting discriminates: unpaired per-image counts (min(clean, repeats - adversarial)) give another number
    assert (clean & ~adv_ok).sum() != np.minimum(clean.sum(0), 4 - adv_ok.sum(0)).sum()


def test_autoattack_rand_with_parameters_is_not_wrapped_in_a_second_eot(tmp_path):
    """AutoAttack 'rand' averages 20 passes itself; its parameters must not switch the runner's EOT wrapper on."""
    (row,) = run(tmp_path, n_images=2, defenses=["bilinear-sv"], threat_models=["full-gradient"],
                 attacks=["autoattack:n_iter=2,attacks=['apgd-ce']"])
    assert row["attack_used"].startswith("autoattack-rand") and row["eot_samples"] is None  # no outer EOT
    md = (tmp_path / "results.md").read_text()
    assert "(ran autoattack-rand" in md and "its own 20 EOT samples" in md


def test_spec_values_may_be_fractions_and_lists():
    from irad.evaluation.config import parse_spec

    assert parse_spec("pgd:alpha=2/255,steps=7") == ("pgd", {"alpha": 2 / 255, "steps": 7})
    assert parse_spec("autoattack:attacks=['apgd-ce','square'],n_iter=5") == (
        "autoattack", {"attacks": ["apgd-ce", "square"], "n_iter": 5})
    assert parse_spec("jpeg:quality=75") == ("jpeg", {"quality": 75})
    with pytest.raises(InputError, match="key=value"):
        parse_spec("pgd:steps")


def test_attack_parameters_of_the_wrong_type_are_named(resnet20):
    with pytest.raises(InputError, match="alpha must be a number"):
        irad.attacks.build_attack("pgd", resnet20, alpha="two")
    with pytest.raises(InputError, match="steps must be a whole number"):
        irad.attacks.build_attack("pgd", resnet20, steps=2.5)
    with pytest.raises(InputError, match="random_start must be True or False"):
        irad.attacks.build_attack("pgd", resnet20, random_start=1)
    assert irad.attacks.build_attack("pgd", resnet20, alpha=1 / 255, steps=3.0).params["steps"] == 3


def test_surrogate_misuse_and_bad_counts_are_rejected(tmp_path):
    with pytest.raises(InputError, match="only by the transfer"):
        run(tmp_path / "a", surrogate="resnet32")
    with pytest.raises(InputError, match="also a victim"):
        run(tmp_path / "b", threat_models=["transfer"], surrogate="resnet20")
    for field in ("repeats", "batch_size", "eot_samples"):
        with pytest.raises(InputError, match=field):
            run(tmp_path / field, **{field: 0})


def test_merge_names_the_folders_that_overlap(tmp_path):
    run(tmp_path / "a", n_images=4)
    run(tmp_path / "b", n_images=4, start=2)
    with pytest.raises(InputError, match=r"images 0\.\.3 in .*a and 2\.\.5 in .*b"):
        merge_results([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
