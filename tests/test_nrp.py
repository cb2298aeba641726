"""NRP (Naseer et al., CVPR 2020): the purifier's shape, range, determinism and gradients, the self-supervised
perturbation, errors, and a toy training run that resumes and whose weights load through ``load_defense``."""

from __future__ import annotations

import math
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import irad
from irad.cli.main import cli
from irad.defenses.nrp import NeuralRepresentationPurifier
from irad.errors import InputError, WeightsError
from irad.training.nrp import LayerFeatures, NRPConfig, feature_distortion, ssp, train_nrp
from irad.weights import WEIGHTS, load_state_dict_file, read_meta, resolve_weights


@pytest.fixture(scope="module")
def cifar():
    return irad.load_dataset("cifar10", "test").tensors(8)[0]


@pytest.fixture(scope="module")
def fastnet():
    return irad.load_classifier("fastnet", weights="default")


def purifier(seed: int = 0) -> NeuralRepresentationPurifier:
    """A small purifier whose tail is not zero (a fresh one is the identity)."""
    torch.manual_seed(seed)
    module = NeuralRepresentationPurifier(width=8, blocks=2)
    torch.nn.init.normal_(module.tail.weight, std=0.05)
    return module.eval()


# ------------------------------------------------------------------------------------------ the purifier


def test_a_fresh_purifier_is_the_identity(cifar):
    assert torch.equal(NeuralRepresentationPurifier(width=8, blocks=1)(cifar), cifar)


def test_shape_dtype_range_and_determinism(cifar):
    module = purifier()
    with torch.no_grad():
        out = module(cifar)
    assert out.shape == cifar.shape and out.dtype == cifar.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1 and not torch.equal(out, cifar)
    assert torch.equal(out, module(cifar)) and not irad.defenses.is_randomized(module)
    for shape in ((1, 3, 13, 21), (2, 3, 1, 1)):
        odd = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        assert module(odd).shape == odd.shape


def test_gradients_are_finite_and_nonzero(cifar):
    x = cifar[:2].clone().requires_grad_(True)
    purifier()(x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


def test_bad_inputs_and_parameters(cifar, tmp_path):
    module = purifier()
    with pytest.raises(InputError, match="batch"):
        module(cifar[0])
    with pytest.raises(InputError, match="channels"):
        module(cifar[:, :1])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        module(cifar * 255)
    with pytest.raises(InputError, match="width"):
        NeuralRepresentationPurifier(width=0)
    with pytest.raises(InputError, match="blocks"):
        NeuralRepresentationPurifier(blocks=1.5)
    with pytest.raises(InputError, match="has no parameter 'eps'"):
        irad.load_defense("nrp", eps=0.1)
    _, path = resolve_weights("resnet20-idelbayev")
    with pytest.raises(WeightsError, match="not nrp; train them with `irad train nrp`"):
        irad.load_defense("nrp", weights=path)


def test_shipped_weights_are_the_default_and_undo_the_ssp(cifar, fastnet):
    """The shipped purifier (sha256-checked on load) keeps clean test images close (validation: 38 dB) and removes
    most of the feature distortion of self-supervised perturbations of test images it never saw."""
    module = irad.load_defense("nrp")
    assert module.meta["sha256"] == WEIGHTS["nrp-cifar10-cpu"].sha256
    features = LayerFeatures(fastnet, "layers.1")
    x_ssp = ssp(cifar, features, 16 / 255, 4 / 255, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean_error = float((module(cifar) - cifar).pow(2).mean())
        target = features(cifar)
        before = float(feature_distortion(features(x_ssp), target))
        after = float(feature_distortion(features(module(x_ssp)), target))
    assert -10 * math.log10(clean_error) > 34
    assert after < 0.5 * before


# ------------------------------------------------------------------------------------------ the SSP


def test_layer_features_are_the_classifiers_intermediate_output(cifar, fastnet):
    net = fastnet.net
    z = (cifar - fastnet.mean) / fastnet.std
    expected = net.layers[1](net.layers[0](F.gelu(net.whiten(z))))
    torch.testing.assert_close(LayerFeatures(fastnet, "layers.1")(cifar), expected)
    with pytest.raises(InputError, match="no layer 'layers.9'.*layers.0"):
        LayerFeatures(fastnet, "layers.9")


def test_ssp_stays_in_the_ball_and_distorts_the_features(cifar, fastnet):
    features = LayerFeatures(fastnet, "layers.1")
    eps = 16 / 255
    x_adv = ssp(cifar, features, eps, 4 / 255, 3, torch.Generator().manual_seed(0))
    assert float((x_adv - cifar).abs().max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1 and not x_adv.requires_grad
    signs = torch.randint(0, 2, cifar.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    noisy = (cifar + eps * signs).clamp(0, 1)  # a random corner of the same ball
    with torch.no_grad():
        clean = features(cifar)
        assert float(feature_distortion(features(cifar), clean)) == 0
        start = ssp(cifar, features, eps, 4 / 255, 0, torch.Generator().manual_seed(0))  # the random start alone
        distortion = float(feature_distortion(features(x_adv), clean))
        assert distortion > 1.5 * float(feature_distortion(features(noisy), clean))
        assert distortion > 2 * float(feature_distortion(features(start), clean))
    assert float((start - cifar).abs().max()) <= eps + 1e-6
    assert torch.equal(x_adv, ssp(cifar, features, eps, 4 / 255, 3, torch.Generator().manual_seed(0)))


# ------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, write_npz):
    """A tiny CIFAR-10-format training file: 20 CIFAR test images cut to 16x16 (the last 8 are the validation
    split)."""
    root = tmp_path_factory.mktemp("data")
    write_npz(root / "cifar10" / "train.npz", irad.load_dataset("cifar10", "test").images[:20, :16, :16],
              np.zeros(20))
    return root


TOY = dict(width=8, blocks=1, ssp_steps=2, epochs=1.0, batch_size=4, pad=2, val_images=4, val_size=8,
           checkpoint_every=2)


def test_training_writes_loadable_weights_and_resumes(data_root, tmp_path):
    cfg = NRPConfig(**TOY)
    path = train_nrp(cfg, tmp_path / "run", data_root=data_root, device="cpu", command=["irad", "train", "nrp"],
                     progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert records[0]["event"] == "start" and records[0]["val_psnr_clean"] >= 100  # identity: PSNR ceiling
    assert [r["step"] for r in records if "event" not in r] == [2, 3]  # 12 images, batches of 4
    end = records[-2]
    assert all(np.isfinite(end[k]) for k in ("train_loss", "train_feature_loss", "train_pixel_loss", "val_psnr",
                                              "val_psnr_clean", "val_feature_loss"))
    meta = read_meta(path)
    assert (meta["kind"], meta["arch"], meta["settings"]) == ("defense", "nrp", {"width": 8, "blocks": 1})
    assert meta["spec"] == {"name": "nrp", "args": {"width": 8, "blocks": 1}}
    assert meta["trained_against"] == ["fastnet"] and meta["config"]["ssp_steps"] == 2

    defense = irad.load_defense("nrp", weights=path)
    trained = NeuralRepresentationPurifier(8, 1)
    trained.load_state_dict(torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"])
    x = irad.load_dataset("cifar10", "test").tensors(2, start=100)[0]
    assert torch.equal(defense(x), trained.eval()(x)) and not torch.equal(defense(x), x)
    assert defense.meta["sha256"] == meta["sha256"]
    bare = tmp_path / "bare.safetensors"  # no sidecar: the architecture is read off the tensors
    bare.write_bytes(path.read_bytes())
    assert torch.equal(irad.load_defense("nrp", weights=bare)(x), defense(x))

    before = load_state_dict_file(path)
    train_nrp(cfg, tmp_path / "run", data_root=data_root, device="cpu", progress=False)  # complete: resumes at 3
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "event" not in r] == [2, 3]
    assert {"event": "resume", "step": 3, "steps_planned": 3}.items() <= records[-2].items()
    assert "already complete" in records[-2]["note"]  # says so, rather than looking like training resumed
    assert all(torch.equal(before[k], v) for k, v in load_state_dict_file(path).items())
    with pytest.raises(InputError, match="other settings"):
        train_nrp(NRPConfig(**{**TOY, "eps": 8 / 255}), tmp_path / "run", data_root=data_root, progress=False)


def test_training_refuses_bad_settings(data_root, tmp_path):
    with pytest.raises(InputError, match="pad"):
        train_nrp(NRPConfig(**{**TOY, "pad": 16}), tmp_path / "bad", data_root=data_root, progress=False)
    with pytest.raises(InputError, match="eps"):
        train_nrp(NRPConfig(eps=0.0), tmp_path / "bad2", data_root=data_root, progress=False)
    with pytest.raises(InputError, match="no layer"):
        train_nrp(NRPConfig(**{**TOY, "feature_layer": "nope"}), tmp_path / "bad3", data_root=data_root,
                  progress=False)


def test_train_nrp_command(data_root, tmp_path):
    res = CliRunner().invoke(cli, ["train", "nrp", "--data", str(data_root), "--out", str(tmp_path / "cli"),
                                   "--width", "4", "--blocks", "1", "--ssp-steps", "1", "--epochs", "0.3",
                                   "--batch-size", "4", "--pad", "2", "--val-images", "2", "--val-size", "8",
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    meta = read_meta(tmp_path / "cli" / "nrp.safetensors")
    assert meta["config"]["epochs"] == 0.3 and meta["settings"] == {"width": 4, "blocks": 1}
    res = CliRunner().invoke(cli, ["train", "nrp", "--data", str(data_root), "--out", str(tmp_path / "cli2"),
                                   "--eps", "0"])
    assert res.exit_code != 0 and "eps" in res.output.lower()
