"""Fixes to training, weight files and a few defenses: exact resume with dropout, pair-split checks, schedule
checks, verified `irad weights import`, resolving past a corrupt copy, a save killed between its renames, seeded
randomization per image, top-level checksums of composed defenses, and `irad bench` options that need --reference."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import irad
import irad.training.diffusion as diffusion_module
import irad.weights.store as store
from irad.reference import make_random_weights
from irad.cli.main import cli
from irad.defenses import is_randomized
from irad.diffusion import ScoreUNet
from irad.errors import InputError, WeightsError
from irad.registry import Entry
from irad.training.classifier import ClassifierRecipe, train_classifier
from irad.training.diffusion import DiffusionConfig, train_diffusion
from irad.training.implicit import ImplicitConfig, train_implicit
from irad.training.pairs import PairsConfig, check_pair_splits, craft_pairs
from irad.training.samplenet import SampleNetConfig, train_samplenet
from irad.weights import import_weights, load_state_dict_file, read_sidecar, resolve_weights, save_weights

pytestmark = pytest.mark.usefixtures("one_thread", "clean_env")  # see conftest.py

# pyautoattack 0.2.0's examples/model_test.pt, recorded independently of the catalogue (as in test_weights.py)
SHA_AA_R18 = "399f52da9f914c323fa5a6096d60f460a3449a59b64a6405200c1e629f8425a7"


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, write_npz):
    """CIFAR-10 format training file: 40 random 8x8 images (the last 10 are the validation split)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    write_npz(root / "cifar10" / "train.npz", rng.integers(0, 256, (40, 8, 8, 3)), rng.integers(0, 10, 40))
    return root


# ------------------------------------------------------------------ 1. diffusion training resumes exactly with dropout


def test_diffusion_training_with_dropout_resumes_bit_for_bit(data_root, tmp_path, monkeypatch):
    cfg = DiffusionConfig(channels=4, mults=(1, 2), dropout=0.5, steps=4, batch_size=2, lr=2e-3, warmup=0, ema=0.5,
                          val_images=2, val_size=10, eval_every=2)
    full = load_state_dict_file(train_diffusion(cfg, tmp_path / "full", data_root=data_root, device="cpu",
                                                progress=False))
    calls = []  # kill the second run at its step-4 evaluation, after the step-2 checkpoint
    real = diffusion_module.validation_loss
    monkeypatch.setattr(diffusion_module, "validation_loss",
                        lambda *a: calls.append(1) or (real(*a) if len(calls) < 4 else 1 / 0))
    torch.manual_seed(123)  # the global generator's state must not matter either
    with pytest.raises(ZeroDivisionError):
        train_diffusion(cfg, tmp_path / "cut", data_root=data_root, device="cpu", progress=False)
    monkeypatch.setattr(diffusion_module, "validation_loss", real)
    torch.manual_seed(456)
    resumed = load_state_dict_file(train_diffusion(cfg, tmp_path / "cut", data_root=data_root, device="cpu",
                                                   progress=False))
    assert full.keys() == resumed.keys()
    for k in full:
        assert torch.equal(full[k], resumed[k]), k
    no_dropout = load_state_dict_file(train_diffusion(dataclasses.replace(cfg, dropout=0.0), tmp_path / "nd",
                                                      data_root=data_root, device="cpu", progress=False))
    assert any(not torch.equal(full[k], no_dropout[k]) for k in full)  # dropout did act


# ---------------------------------------------------------------------------- 2. and 10. adversarial pairs' splits


def _fake_pairs(folder: Path, **config) -> Path:
    """A pairs folder holding only meta.json (the split check reads nothing else)."""
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"config": config, "complete": True}))
    return folder


def test_pair_split_check_refuses_overlap_and_accepts_old_folders(tmp_path):
    ok = dict(dataset="cifar10", val_size=5000)
    train = _fake_pairs(tmp_path / "train", split="train", **ok)
    val = _fake_pairs(tmp_path / "val", split="val", **ok)
    check_pair_splits(train, val, "cifar10")
    with pytest.raises(InputError, match="same folder"):
        check_pair_splits(train, train, "cifar10")
    with pytest.raises(InputError, match="same folder"):
        check_pair_splits(train, train.parent / "." / "train", "cifar10")  # spelled differently
    with pytest.raises(InputError, match="--pairs.*split='val'"):
        check_pair_splits(_fake_pairs(tmp_path / "val-as-train", split="val", **ok), val, "cifar10")
    cases = {"train-as-val": ({"split": "train", **ok}, "--val-pairs.*split='train'"),
             "test-as-val": ({"split": "test", **ok}, "--val-pairs.*split='test'"),
             "other-val-size": ({"split": "val", "dataset": "cifar10", "val_size": 4000}, "val_size"),
             "other-dataset": ({"split": "val", "dataset": "cifar100", "val_size": 5000}, "cifar100")}
    for name, (config, match) in cases.items():
        with pytest.raises(InputError, match=match):
            check_pair_splits(train, _fake_pairs(tmp_path / name, **config), "cifar10")
    with pytest.raises(InputError, match="--dataset"):
        check_pair_splits(train, val, "cifar100")
    old = _fake_pairs(tmp_path / "old-val", split="val")  # an old folder without dataset / val_size: skipped
    check_pair_splits(train, old, "cifar10")


@pytest.fixture(scope="module")
def tiny_pairs(data_root, tmp_path_factory):
    """Train pairs with val_size 10 and val pairs with val_size 20: the val images 20..29 are also training images."""
    out = tmp_path_factory.mktemp("pairs")
    kw = dict(surrogate="resnet20", steps=1, limit=4, shard_size=4)
    craft_pairs(PairsConfig(split="train", val_size=10, **kw), out / "train", data_root=data_root, progress=False)
    craft_pairs(PairsConfig(split="val", val_size=10, **kw), out / "val", data_root=data_root, progress=False)
    craft_pairs(PairsConfig(split="val", val_size=20, **kw), out / "val20", data_root=data_root, progress=False)
    return out


def _implicit(pairs: str | None, val_pairs: str | None, **kw) -> ImplicitConfig:
    return ImplicitConfig(**{"pairs": pairs, "val_pairs": val_pairs, "epochs": 1.0, "batch_size": 4, "queries": 8,
                             "n_resblocks": 1, "n_feats": 4, "hidden": [8], "val_size": 10, "val_images": 4,
                             "checkpoint_every": 1, **kw})


def test_trainers_refuse_mismatched_pairs_before_making_the_run_folder(tiny_pairs, data_root, tmp_path):
    train, val, val20 = (str(tiny_pairs / n) for n in ("train", "val", "val20"))
    with pytest.raises(InputError, match="val_size"):
        train_implicit(_implicit(train, val20), tmp_path / "a", data_root=data_root, progress=False)
    with pytest.raises(InputError, match="same folder"):
        train_implicit(_implicit(train, train), tmp_path / "b", data_root=data_root, progress=False)
    cfg = SampleNetConfig(implicit=str(tmp_path / "none.safetensors"), pairs=train, val_pairs=val20,
                          surrogate="resnet20")
    with pytest.raises(InputError, match="val_size"):
        train_samplenet(cfg, tmp_path / "c", data_root=data_root, progress=False)
    assert not any((tmp_path / n).exists() for n in "abc")
    # matching pairs still train
    path = train_implicit(_implicit(train, val), tmp_path / "ok", data_root=data_root, progress=False)
    assert read_sidecar(path)["steps_done"] == 1


def test_implicit_task_without_pairs_refuses_pairs_options(data_root, tmp_path):
    for kw in ({"pairs": "somewhere", "val_pairs": None}, {"pairs": None, "val_pairs": "somewhere"}):
        with pytest.raises(InputError, match="clean2clean.*does not use adversarial pairs"):
            train_implicit(_implicit(task="clean2clean", **kw), tmp_path / "run", data_root=data_root,
                           progress=False)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------- 3. epochs and learning rate are checked


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"epochs": -1.0}, {"epochs": float("nan")}, {"lr": -1e-3},
                                 {"lr": 0.0}, {"betas": (0.0, 1.5)}])
def test_implicit_and_samplenet_refuse_bad_schedules(bad, data_root, tmp_path):
    with pytest.raises(InputError, match=next(iter(bad))):
        train_implicit(_implicit(None, None, task="clean2clean", **bad), tmp_path / "imp", data_root=data_root,
                       progress=False)
    cfg = SampleNetConfig(implicit="x.safetensors", pairs="p", val_pairs="v", **bad)
    with pytest.raises(InputError, match=next(iter(bad))):
        train_samplenet(cfg, tmp_path / "sn", data_root=data_root, progress=False)
    assert not (tmp_path / "imp").exists() and not (tmp_path / "sn").exists()


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"epochs": -2}, {"lr": -0.1}, {"batch_size": 0}])
def test_classifier_refuses_bad_recipes(bad, data_root, tmp_path):
    recipe = ClassifierRecipe(**{"arch": "resnet20", "train_limit": 8, "batch_size": 8, "val_size": 10, "epochs": 1,
                                 **bad})
    with pytest.raises(InputError, match=next(iter(bad))):
        train_classifier(recipe, tmp_path / "run", data_root=data_root, device="cpu", progress=False)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------- 4. `irad weights import` verifies


def test_import_refuses_a_file_that_is_not_the_catalogued_one(tmp_path):
    wrong = tmp_path / "wrong.safetensors"
    save_weights({"w": torch.zeros(2)}, wrong, {})
    with pytest.raises(WeightsError, match="sha256"):
        import_weights("fastnet-irad-cifar10", wrong, out_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "fastnet-irad-cifar10.safetensors").exists()
    res = CliRunner().invoke(cli, ["weights", "import", "fastnet-irad-cifar10", str(wrong), "--out",
                                   str(tmp_path / "out")])
    assert res.exit_code == 1 and "sha256" in res.output and "wrote" not in res.output


def test_import_of_the_catalogued_file_is_verified_and_lands_where_resolve_finds_it(tmp_path):
    _, shipped = resolve_weights("fastnet-irad-cifar10")
    target = import_weights("fastnet-irad-cifar10", shipped, out_dir=tmp_path / "out")
    assert sha(target) == sha(shipped) and read_sidecar(target)["sha256"] == sha(shipped)
    old, new = read_sidecar(shipped), read_sidecar(target)  # the source's sidecar is carried over
    assert set(old) <= set(new) and new["recipe"] == old["recipe"]


def test_import_of_autoattack_resnet18_copies_the_verified_file(tmp_path, monkeypatch):
    _, original = resolve_weights("resnet18-autoattack")
    assert sha(original) == SHA_AA_R18
    home = tmp_path / "home"
    monkeypatch.setenv("IRAD_HOME", str(home))
    target = import_weights("resnet18-autoattack", original)
    assert target == home / "weights" / "model_test.pt" and sha(target) == SHA_AA_R18
    spec = store.WEIGHTS.get("resnet18-autoattack").factory()  # as if pyautoattack were not installed
    monkeypatch.setitem(store.WEIGHTS._entries, "resnet18-autoattack",
                        Entry("resnet18-autoattack", lambda: dataclasses.replace(spec, locate=None)))
    assert resolve_weights("resnet18-autoattack")[1] == target
    tampered = tmp_path / "model_test.pt"
    tampered.write_bytes(original.read_bytes() + b"\0")
    with pytest.raises(WeightsError, match="sha256.*pyautoattack"):
        import_weights("resnet18-autoattack", tampered, out_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "model_test.pt").exists()


# ------------------------------------------------------------------------ 5. resolve goes past a corrupt candidate


def test_resolve_uses_a_valid_cache_copy_after_a_corrupt_shipped_file(tmp_path, monkeypatch):
    _, src = resolve_weights("resnet20-idelbayev")
    data = bytearray(src.read_bytes())
    data[1000] ^= 0x01
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / src.name).write_bytes(bytes(data))
    monkeypatch.setattr(store, "shipped_dir", lambda: tmp_path / "pkg")
    monkeypatch.setenv("IRAD_HOME", str(tmp_path / "home"))
    cached = tmp_path / "home" / "weights" / src.name
    cached.parent.mkdir(parents=True)
    shutil.copy(src, cached)
    with pytest.warns(UserWarning, match="pkg"):
        assert resolve_weights("resnet20-idelbayev")[1] == cached
    cached.write_bytes(bytes(data[:-10]))  # both copies corrupt: the error names both
    with pytest.raises(WeightsError, match=r"(?s)pkg.*home") as info:
        resolve_weights("resnet20-idelbayev")
    assert str(tmp_path / "pkg" / src.name) in str(info.value) and str(cached) in str(info.value)


# ------------------------------------------------------------------- 6. a save killed between its renames is usable


@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_save_killed_between_renames_leaves_a_consistent_pair(tmp_path, monkeypatch, kill_at):
    path = tmp_path / "m.safetensors"
    save_weights({"w": torch.zeros(3)}, path, {"version": 1})
    calls = {"n": 0}
    real_replace = os.replace

    def dying_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == kill_at:
            raise KeyboardInterrupt  # the process dies before this rename
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        save_weights({"w": torch.ones(3)}, path, {"version": 2})
    monkeypatch.setattr(os, "replace", real_replace)
    w, meta = load_state_dict_file(path)["w"], read_sidecar(path)
    assert (meta["version"], w.tolist()) in ((1, [0.0] * 3), (2, [1.0] * 3))  # old pair or new pair, never mixed
    assert meta["sha256"] == sha(path)
    save_weights({"w": torch.full((3,), 2.0)}, path, {"version": 3})  # the next save is unaffected
    assert read_sidecar(path)["version"] == 3 and load_state_dict_file(path)["w"].tolist() == [2.0] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


# ------------------------------------------------------------------------------ 7. randomization: seeds, per image


def _resize_pad_resize(img: torch.Tensor, rh: int, rw: int, top: int, left: int, big: int) -> torch.Tensor:
    """Xie et al.'s transform of one image for one draw, written out independently."""
    h = img.shape[-1]
    y = F.interpolate(img[None], size=(rh, rw), mode="nearest")
    canvas = torch.zeros(1, 3, big, big)
    canvas[:, :, top:top + rh, left:left + rw] = y
    return F.interpolate(canvas, size=(h, h), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)[0]


def test_randomization_draws_per_image_and_a_seed_fixes_every_call():
    img = irad.load_dataset("cifar10", "test").tensors(1)[0][0, :, :8, :8]
    x = img.expand(16, 3, 8, 8).contiguous()  # 16 copies of one image
    big = 9  # max(8 + 1, int(8 * 331 / 299))
    draws = [(rh, rw, t, l) for rh in (8, 9) for rw in (8, 9) for t in range(big - rh + 1)
             for l in range(big - rw + 1)]
    candidates = torch.stack([_resize_pad_resize(img, *d, big) for d in draws])
    seeded = irad.load_defense("randomization", seed=5)
    out = seeded(x)
    picked = set()
    for o in out:
        match = [i for i, c in enumerate(candidates) if torch.allclose(o, c, atol=1e-6)]
        assert match, "every output is the transform of its image for one valid draw"
        picked.add(match[0])
    assert len(picked) > 1  # the images of one batch get their own draws
    assert torch.equal(seeded(x), out) and torch.equal(seeded(x[:5]), out[:5])  # same output on every call
    assert not is_randomized(seeded) and is_randomized(irad.load_defense("randomization"))
    for bad in (0.5, float("nan"), float("inf"), "1.1", True):
        with pytest.raises(InputError, match="ratio"):
            irad.load_defense("randomization", ratio=bad)
    with pytest.raises(InputError, match="seed"):
        irad.load_defense("randomization", seed=1.5)


def test_seeded_samplers_and_diffpure_report_deterministic(tmp_path):
    assert not is_randomized(irad.load_defense("bilinear-sv", seed=0))
    assert is_randomized(irad.load_defense("bilinear-sv"))
    torch.manual_seed(0)
    net = ScoreUNet(channels=4, mults=(1, 2), blocks=1)
    score = tmp_path / "score.safetensors"
    save_weights(net.state_dict(), score, {"kind": "defense", "arch": "diffpure", "architecture": net.architecture()})
    seeded = irad.load_defense("diffpure", weights=score, steps=2, seed=0)
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(seeded(x), seeded(x)) and not is_randomized(seeded)
    assert is_randomized(irad.load_defense("diffpure", weights=score, steps=2))


# -------------------------------------------------------------- 8. composed defenses carry a top-level checksum


def _with_trained_against(path: Path, names: list[str]) -> Path:
    side = path.with_suffix(".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), "trained_against": names}))
    return path


def test_irad_diffpure_and_resample_expose_checksum_and_trained_against(tmp_path):
    torch.manual_seed(0)
    net = ScoreUNet(channels=4, mults=(1, 2), blocks=1)
    score = tmp_path / "score.safetensors"
    save_weights(net.state_dict(), score, {"kind": "defense", "arch": "diffpure", "architecture": net.architecture(),
                                           "trained_against": ["vgg16"]})
    irad_file = _with_trained_against(make_random_weights(tmp_path / "irad.safetensors", n_resblocks=1, n_feats=4,
                                                          hidden=(8,)), ["resnet18", "resnet20"])
    both = irad.load_defense("irad+diffpure", weights=score, irad_weights=irad_file, steps=1, seed=0)
    parts = (sha(score), sha(irad_file))
    assert both.meta["sha256"] == hashlib.sha256(f"diffpure:{parts[0]}+irad:{parts[1]}".encode()).hexdigest()
    assert both.meta["trained_against"] == ["resnet18", "resnet20", "vgg16"]
    assert both.meta["diffpure"]["sha256"] == parts[0] and both.meta["irad"]["sha256"] == parts[1]
    other = irad.load_defense("irad+diffpure", weights=score, irad_weights=make_random_weights(
        tmp_path / "irad2.safetensors", n_resblocks=1, n_feats=4, hidden=(8,), seed=1), steps=1)
    assert other.meta["sha256"] != both.meta["sha256"]
    resampled = irad.load_defense("resample", weights=irad_file, sampler="si", d=1.0)
    assert resampled.meta["sha256"] == parts[1] and resampled.meta["trained_against"] == ["resnet18", "resnet20"]
    assert getattr(irad.load_defense("resample", reconstruction="bilinear", sampler="si"), "meta", {}) == {}


# ------------------------------------------------------------------- 9. `irad bench` options that need --reference


@pytest.mark.parametrize("args, named", [(["--weights", "w.safetensors"], "--weights"),
                                         (["--json", "out.json", "--training"], "--json, --training"),
                                         (["--batch-size", "4"], "--batch-size"),
                                         (["--precisions", "fp32"], "--precisions")])
def test_bench_refuses_reference_options_without_reference(args, named):
    res = CliRunner().invoke(cli, ["bench", "--defense", "none", "--device", "cpu", "--batch-sizes", "1",
                                   "--repeats", "1", "--image-size", "8", *args])
    assert res.exit_code == 2 and named in res.output and "--reference" in res.output


def test_bench_refuses_options_it_never_uses():
    res = CliRunner().invoke(cli, ["bench", "--defense", "none", "--device", "cpu", "--batch-sizes", "1",
                                   "--repeats", "1", "--image-size", "8", "--data", "somewhere"])
    assert res.exit_code == 2 and "--data" in res.output
    res = CliRunner().invoke(cli, ["bench", "--reference", "--defense", "irad", "--device", "cpu"])
    assert res.exit_code == 2 and "--defense" in res.output
    res = CliRunner().invoke(cli, ["bench", "--reference", "--train-batch", "4", "--device", "cpu"])
    assert res.exit_code == 2 and "--train-batch" in res.output and "--training" in res.output


@pytest.mark.parametrize("option", ["--batch-sizes", "--image-sizes"])
@pytest.mark.parametrize("value", ["1,x", "0", ",", "-4"])
def test_bench_size_lists_must_be_positive_integers(option, value):
    res = CliRunner().invoke(cli, ["bench", "--reference", "--device", "cpu", option, value])
    assert res.exit_code == 2 and option in res.output and "positive integers" in res.output
