"""Training runs and their settings: diffusion training with dropout resumes bit for bit; adversarial pairs' splits
are checked before a run folder is made; bad schedules and recipes are refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import irad.training.diffusion as diffusion_module
from irad.errors import InputError
from irad.training.classifier import ClassifierRecipe, train_classifier
from irad.training.diffusion import DiffusionConfig, train_diffusion
from irad.training.implicit import ImplicitConfig, train_implicit
from irad.training.pairs import PairsConfig, check_pair_splits, craft_pairs
from irad.training.samplenet import SampleNetConfig, train_samplenet
from irad.weights import load_state_dict_file, read_meta

pytestmark = pytest.mark.usefixtures("one_thread", "clean_env")  # see conftest.py


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, write_npz):
    """CIFAR-10 format training file: 40 random 8x8 images (the last 10 are the validation split)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    write_npz(root / "cifar10" / "train.npz", rng.integers(0, 256, (40, 8, 8, 3)), rng.integers(0, 10, 40))
    return root


# ------------------------------------------------------------------- diffusion training resumes exactly with dropout


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


# ----------------------------------------------------------------------------------------- adversarial pairs' splits


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
    assert read_meta(path)["steps_done"] == 1


def test_implicit_task_without_pairs_refuses_pairs_options(data_root, tmp_path):
    for kw in ({"pairs": "somewhere", "val_pairs": None}, {"pairs": None, "val_pairs": "somewhere"}):
        with pytest.raises(InputError, match="clean2clean.*does not use adversarial pairs"):
            train_implicit(_implicit(task="clean2clean", **kw), tmp_path / "run", data_root=data_root,
                           progress=False)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ epochs and learning rate are checked


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


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf")])
def test_samplenet_refuses_a_fidelity_weight_that_is_not_a_finite_non_negative_number(bad, data_root, tmp_path):
    cfg = SampleNetConfig(implicit="x.safetensors", pairs="p", val_pairs="v", fidelity=bad)
    with pytest.raises(InputError, match="fidelity must be a finite number >= 0"):
        train_samplenet(cfg, tmp_path / "sn", data_root=data_root, progress=False)
    assert not (tmp_path / "sn").exists()


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"epochs": -2}, {"lr": -0.1}, {"batch_size": 0}])
def test_classifier_refuses_bad_recipes(bad, data_root, tmp_path):
    recipe = ClassifierRecipe(**{"arch": "resnet20", "train_limit": 8, "batch_size": 8, "val_size": 10, "epochs": 1,
                                 **bad})
    with pytest.raises(InputError, match=next(iter(bad))):
        train_classifier(recipe, tmp_path / "run", data_root=data_root, device="cpu", progress=False)
    assert not (tmp_path / "run").exists()
