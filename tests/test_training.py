"""Training commands: pairs stay in the ε-ball, tasks build the right inputs, runs resume exactly after a kill."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from irad.errors import InputError
from irad.training.implicit import ImplicitConfig, train_implicit
from irad.training.loop import stopped_early
from irad.training.pairs import AdversarialPairs, PairsConfig, craft_pairs
from irad.training.samplenet import SampleNetConfig, train_samplenet
from irad.training.tasks import TASKS, sample_queries
from irad.weights import load_state_dict_file, read_meta
from helpers import header_meta, tensors_sha256


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A tiny CIFAR-10-format training file: 40 images of 8x8 (the last 10 are the validation split)."""
    root = tmp_path_factory.mktemp("data")
    (root / "cifar10").mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    np.savez(root / "cifar10" / "train.npz", images=images, labels=rng.integers(0, 10, 40))
    return root


@pytest.fixture(scope="module")
def pairs(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs")
    kw = dict(surrogate="resnet20", steps=2, shard_size=12, val_size=10)
    craft_pairs(PairsConfig(split="train", **kw), out / "train", data_root=data_root, progress=False)
    craft_pairs(PairsConfig(split="val", **kw), out / "val", data_root=data_root, progress=False)
    return out


def test_pairs_are_in_the_eps_ball_and_resume(pairs, data_root):
    p = AdversarialPairs(pairs / "train", data_root)
    assert len(p) == 30 and p.meta["complete"]
    diff = np.abs(p.adv.astype(int) - p.clean.astype(int))
    assert diff.max() <= 8 and diff.max() >= 7  # quantised to uint8 inside eps = 8/255, and the attack used it
    shard = sorted((pairs / "train").glob("shard_*.npz"))[1]
    before = np.load(shard)["adv"].copy()
    shard.unlink()  # a killed run: the missing shard is crafted again, identically (per-shard seeds)
    craft_pairs(PairsConfig(split="train", surrogate="resnet20", steps=2, shard_size=12, val_size=10),
                pairs / "train", data_root=data_root, progress=False)
    assert np.array_equal(np.load(shard)["adv"], before)
    with pytest.raises(InputError, match="other settings"):
        craft_pairs(PairsConfig(split="train", surrogate="resnet20", steps=3, shard_size=12, val_size=10),
                    pairs / "train", data_root=data_root, progress=False)


def test_tasks_inputs_and_targets():
    clean = torch.rand(2, 3, 12, 12)
    adv = (clean + 0.03).clamp(0, 1)
    gen = torch.Generator().manual_seed(0)
    b = TASKS.build("adversarial-denoising")(clean, adv, gen)
    assert torch.equal(b.inputs, adv) and torch.equal(b.targets, clean)
    b = TASKS.build("clean2clean")(clean, None, gen)
    assert torch.equal(b.inputs, clean) and b.cell is None
    b = TASKS.build("inpainting")(clean, None, gen)
    for i in range(2):
        changed = (b.inputs[i] != clean[i]).any(0)
        assert changed.sum() >= 9 and (b.inputs[i][:, changed] == 0).all()  # a zeroed rectangle of >= 3x3
    b = TASKS.build("gaussian-denoising", sigma=0.05)(clean, None, gen)
    assert 0.02 < float((b.inputs - clean).std()) < 0.06
    b = TASKS.build("super-resolution", max_scale=3.0)(clean, None, gen)
    h = b.inputs.shape[-1]
    assert b.targets.shape == clean.shape
    same = TASKS.build("super-resolution", max_scale=1.0)(clean, None, gen)  # scale 1: the plain pixel grid
    torch.testing.assert_close(same.coords[0, 3, 5], torch.tensor([3.0, 5.0]))
    # the target pixel (i, j) sits at ((i + 0.5) h / 12 - 0.5) in the low-resolution input's pixel units
    torch.testing.assert_close(b.coords[0, 3, 5], torch.tensor([(3.5 * h / 12) - 0.5, (5.5 * h / 12) - 0.5]))
    sub = sample_queries(b, 10, gen)
    assert sub.targets.shape == (2, 3, 10, 1) and sub.coords.shape == (2, 10, 1, 2)
    # the kept targets are the target pixels at the kept coordinates' grid positions
    r = ((sub.coords[0, :, 0, 0] + 0.5) * 12 / h - 0.5).round().long()
    c = ((sub.coords[0, :, 0, 1] + 0.5) * 12 / h - 0.5).round().long()
    torch.testing.assert_close(sub.targets[0, :, :, 0], clean[0][:, r, c])


def _implicit_cfg(pairs, **kw):
    return ImplicitConfig(pairs=str(pairs / "train"), val_pairs=str(pairs / "val"), epochs=1.0, batch_size=10,
                          queries=16, n_resblocks=1, n_feats=8, hidden=[16, 16], val_size=10, val_images=10,
                          checkpoint_every=1, **kw)


def test_implicit_training_resumes_to_the_same_weights(pairs, data_root, tmp_path, monkeypatch):
    full = train_implicit(_implicit_cfg(pairs), tmp_path / "full", data_root=data_root, progress=False)
    import irad.training.loop as loop

    real_log = loop.RunDir.log
    calls = {"n": 0}

    def dying_log(self, record, echo=True):  # kill the run right after its 2nd step was checkpointed
        real_log(self, record, echo)
        if record.get("step") == 2:
            calls["n"] += 1
            raise KeyboardInterrupt

    monkeypatch.setattr(loop.RunDir, "log", dying_log)
    with pytest.raises(KeyboardInterrupt):
        train_implicit(_implicit_cfg(pairs), tmp_path / "killed", data_root=data_root, progress=False)
    monkeypatch.setattr(loop.RunDir, "log", real_log)
    resumed = train_implicit(_implicit_cfg(pairs), tmp_path / "killed", data_root=data_root, progress=False)
    a, b = load_state_dict_file(full), load_state_dict_file(resumed)
    assert calls["n"] == 1 and a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    events = [json.loads(line).get("event") for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert "resume" in events and events[-1] == "done"
    with pytest.raises(InputError, match="other settings"):
        train_implicit(_implicit_cfg(pairs, lr=1e-3), tmp_path / "killed", data_root=data_root, progress=False)


def test_time_limit_stops_cleanly_and_the_same_command_finishes_the_run(pairs, data_root, tmp_path):
    """--time-limit: the run stops after the step that crosses the limit, with validated, exported weights whose
    metadata says how far it got; rerun without a limit, it continues to the same weights as an unlimited run."""
    full = train_implicit(_implicit_cfg(pairs), tmp_path / "full", data_root=data_root, progress=False)
    early = train_implicit(_implicit_cfg(pairs), tmp_path / "cut", data_root=data_root, progress=False,
                           time_limit_min=1e-9)
    meta = header_meta(early)
    assert meta["steps_done"] == 1 < meta["steps_planned"]
    assert f"step 1 of {meta['steps_planned']}" in stopped_early(early)
    records = [json.loads(line) for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [r for r in records if r.get("event") == "time-limit"][0]["step"] == 1
    assert any("val_psnr" in r and r.get("step") == 1 for r in records)  # validated before stopping
    resumed = train_implicit(_implicit_cfg(pairs), tmp_path / "cut", data_root=data_root, progress=False)
    assert header_meta(resumed)["steps_done"] == meta["steps_planned"]
    a, b = load_state_dict_file(full), load_state_dict_file(resumed)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert stopped_early(resumed) is None
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="positive number of minutes"):
            train_implicit(_implicit_cfg(pairs), tmp_path / "bad", data_root=data_root, progress=False,
                           time_limit_min=bad)
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_samplenet_training_learns_only_samplenet(pairs, data_root, tmp_path):
    implicit = train_implicit(_implicit_cfg(pairs), tmp_path / "imp", data_root=data_root, progress=False)
    cfg = SampleNetConfig(implicit=str(implicit), pairs=str(pairs / "train"), val_pairs=str(pairs / "val"),
                          surrogate="resnet20", epochs=1.0, batch_size=15, val_images=10, checkpoint_every=1)
    out = train_samplenet(cfg, tmp_path / "sn", data_root=data_root, progress=False)
    before, after = load_state_dict_file(implicit), load_state_dict_file(out)
    for k, v in before.items():  # the implicit representation is frozen
        assert torch.equal(v, after[k]), k
    sampler = {k: v for k, v in after.items() if k.startswith("sampler.")}
    last = max(int(k.split(".")[3]) for k in sampler)  # sampler.net.mlp.<i>.weight: the zero-initialised output layer
    assert float(sampler[f"sampler.net.mlp.{last}.weight"].abs().sum()) > 0  # it learned a non-zero shift
    meta = header_meta(out)
    assert meta["spec"]["sampler"]["name"] == "samplenet" and meta["sha256"] == tensors_sha256(out)
    import irad

    defense = irad.load_defense("irad", weights=str(out))
    x = torch.rand(2, 3, 8, 8)
    assert defense(x).shape == x.shape
    assert F.l1_loss(defense(x), irad.load_defense("disco", weights=str(out))(x)) > 0


def test_samplenet_fidelity_term_keeps_resampled_clean_images_closer_to_the_clean_image(pairs, data_root, tmp_path):
    """With λ·|IR(X) − X|₁ in the loss, the same run (same seed, data and steps) ends with IR(clean) nearer the
    clean images than the paper's CE-only loss does; the PSNRs are computed here from the saved weights."""
    import irad

    implicit = train_implicit(_implicit_cfg(pairs), tmp_path / "imp", data_root=data_root, progress=False)
    clean, _, _ = AdversarialPairs(pairs / "train", data_root).batch(np.arange(30))

    def clean_psnr(fidelity: float) -> float:
        cfg = SampleNetConfig(implicit=str(implicit), pairs=str(pairs / "train"), val_pairs=str(pairs / "val"),
                              surrogate="resnet20", epochs=6.0, batch_size=15, lr=2e-2, val_images=10,
                              checkpoint_every=100, fidelity=fidelity)
        out = train_samplenet(cfg, tmp_path / f"sn-{fidelity}", data_root=data_root, progress=False)
        log = [json.loads(line) for line in (tmp_path / f"sn-{fidelity}" / "log.jsonl").read_text().splitlines()]
        assert all("val_clean_psnr" in r and "val_adv_psnr" in r for r in log if "val_clean_acc" in r)
        with torch.no_grad():
            resampled = irad.load_defense("irad", weights=str(out))(clean)
        return float((-10 * torch.log10(((resampled - clean) ** 2).mean(dim=(1, 2, 3)))).mean())

    assert clean_psnr(50.0) > clean_psnr(0.0) + 0.5  # measured: 16.2 vs 8.7 dB


def test_samplenet_writes_partial_weights_at_each_validation_and_logs_true_psnrs(pairs, data_root, tmp_path):
    """--val-every validates and writes the weights so far (partial: steps_done < steps_planned, with the figures
    of that validation); the logged PSNRs are those of the saved weights on the validation pairs, recomputed here;
    changing only when to validate or checkpoint does not block a resume."""
    import irad
    from irad.training.loop import stopped_early

    implicit = train_implicit(_implicit_cfg(pairs), tmp_path / "imp", data_root=data_root, progress=False)
    cfg = SampleNetConfig(implicit=str(implicit), pairs=str(pairs / "train"), val_pairs=str(pairs / "val"),
                          surrogate="resnet20", epochs=2.0, batch_size=10, lr=1e-2, val_images=10,
                          checkpoint_every=1, val_every=2, fidelity=1.0)
    seen: list[dict] = []
    import irad.training.samplenet as samplenet_module

    real_save = samplenet_module.save_resampler_weights

    def spy(recon, samplenet, path, meta):
        seen.append(dict(meta))
        return real_save(recon, samplenet, path, meta)

    samplenet_module.save_resampler_weights = spy
    try:
        out = train_samplenet(cfg, tmp_path / "sn", data_root=data_root, progress=False)
    finally:
        samplenet_module.save_resampler_weights = real_save
    # every 2 steps and at each epoch end (3 steps) while it runs, then the final weights
    assert [m["steps_done"] for m in seen] == [2, 3, 4, 6]
    assert all(m["steps_planned"] == 6 and "val_clean_psnr" in m for m in seen) and stopped_early(out) is None
    log = [json.loads(line) for line in (tmp_path / "sn" / "log.jsonl").read_text().splitlines()]
    last = [r for r in log if "val_clean_psnr" in r][-1]
    clean, adv, _ = AdversarialPairs(pairs / "val", data_root).batch(np.arange(10))
    with torch.no_grad():
        defense = irad.load_defense("irad", weights=str(out))
        mse = lambda a: ((a - clean) ** 2).mean(dim=(1, 2, 3))  # noqa: E731
        clean_psnr = float((-10 * torch.log10(mse(defense(clean)))).mean())
        adv_psnr = float((-10 * torch.log10(mse(defense(adv)))).mean())
    assert seen[-1]["val_clean_psnr"] == last["val_clean_psnr"]  # the final file records the last validation
    assert last["val_clean_psnr"] == pytest.approx(clean_psnr, abs=1e-3)
    assert last["val_adv_psnr"] == pytest.approx(adv_psnr, abs=1e-3)
    # a finished run resumed with another validation cadence is not refused (it changes no weight)
    again = SampleNetConfig(**{**cfg.__dict__, "val_every": 3, "checkpoint_every": 2})
    assert train_samplenet(again, tmp_path / "sn", data_root=data_root, progress=False) == out
    assert read_meta(out)["val_clean_psnr"] == last["val_clean_psnr"]  # re-exported with the run's figures


def test_a_checkpoint_holding_other_python_objects_is_refused_not_unpickled(tmp_path):
    """Resuming reads checkpoints with torch.load(weights_only=True): a file that would need the full unpickler
    (which can run code) is a clear error, and nothing of it is executed."""
    import argparse

    from irad.training.rundir import RunDir

    run = RunDir(tmp_path / "run", ["irad", "test"])
    torch.save({"model": {}, "args": argparse.Namespace(lr=1.0)}, run.checkpoint_path)  # a class not allowed
    with pytest.raises(InputError, match="not a checkpoint irad can resume from"):
        run.load_checkpoint()
    torch.save({"model": {"w": torch.zeros(2)}, "step": 3, "config": {"lr": 1e-3, "betas": (0.9, 0.999)}},
               run.checkpoint_path)
    assert run.load_checkpoint()["step"] == 3  # what irad writes loads
