"""DiffPure (Nie et al., ICML 2022) and IRAD+DiffPure: the VP-SDE against its closed form, the score U-Net, the
defense's identity at t* = 0, range, seeding, checkpointed gradients, errors, and a toy `irad train diffusion` run
(weights, log, resume, loading). Everything uses tiny random or briefly trained networks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import irad
import irad.defenses.diffpure as diffpure_module
import irad.training.diffusion as training_module
from irad.reference import make_random_weights
from irad.cli.main import cli
from irad.defenses import is_randomized
from irad.defenses.diffpure import DiffPure
from irad.diffusion import VPSDE, ScoreUNet
from irad.errors import InputError, WeightsError
from irad.training.diffusion import DiffusionConfig, train_diffusion
from irad.weights import load_state_dict_file, read_meta, resolve_weights, save_weights


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def tiny_unet(seed: int = 0) -> ScoreUNet:
    """A random 8-channel U-Net whose output layer is not zero (so that it moves the images)."""
    torch.manual_seed(seed)
    net = ScoreUNet(channels=8, mults=(1, 2), blocks=1)
    torch.nn.init.normal_(net.conv_out.weight, std=0.05)
    return net


@pytest.fixture(scope="module")
def score_file(tmp_path_factory):
    net = tiny_unet()
    path = tmp_path_factory.mktemp("score") / "diffpure.safetensors"
    save_weights(net.state_dict(), path, {"kind": "defense", "arch": "diffpure", "dataset": "cifar10",
                                          "architecture": net.architecture(), "settings": {"t_max": 0.2}})
    return path


@pytest.fixture(scope="module")
def images():
    return irad.load_dataset("cifar10", "test").tensors(3)[0][:, :, :8, :8].contiguous()


# ------------------------------------------------------------------------------------------ the SDE and the U-Net


def test_vp_sde_marginal_against_the_closed_form():
    """α(t) = exp(-¼ t² (20 - 0.1) - ½ t 0.1), σ = sqrt(1 - α²), numbers computed by hand."""
    sde = VPSDE()
    assert (sde.beta_min, sde.beta_max) == (0.1, 20.0)
    assert sde.alpha(0.0) == 1.0 and sde.sigma(0.0) == 0.0
    for t, alpha, sigma in [(0.1, 0.946722, 0.322053), (0.5, 0.281183, 0.959654), (1.0, 0.006572, 0.999978)]:
        assert sde.alpha(t) == pytest.approx(alpha, abs=1e-6) and sde.sigma(t) == pytest.approx(sigma, abs=1e-6)
    t = torch.tensor([0.0, 0.1, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(sde.alpha(t), torch.tensor([1.0, 0.946722, 0.281183, 0.006572], dtype=torch.float64),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(sde.alpha(t) ** 2 + sde.sigma(t) ** 2, torch.ones(4, dtype=torch.float64))
    assert sde.beta(0.5) == pytest.approx(10.05)
    x0, noise = torch.ones(4, 1, 2, 2, dtype=torch.float64), torch.full((4, 1, 2, 2), 2.0, dtype=torch.float64)
    torch.testing.assert_close(sde.marginal(x0, t, noise)[:, 0, 0, 0], sde.alpha(t) + 2 * sde.sigma(t))
    # reverse Euler–Maruyama step with zero score and zero noise: x (1 + ½ β dt)
    assert float(sde.reverse_step(torch.ones(1), 0.1, 0.01, torch.zeros(1), torch.zeros(1))) == pytest.approx(
        1 + 0.5 * 2.09 * 0.01)


def test_unet_shapes_time_input_and_size_errors():
    net = tiny_unet()
    x = torch.randn(2, 3, 8, 12)
    assert net(x, 0.1).shape == x.shape and net(x, torch.tensor([0.1, 0.2])).shape == x.shape
    assert not torch.allclose(net(x, 0.01), net(x, 0.2))  # time-conditioned
    assert float(ScoreUNet(channels=8)(x, 0.1).detach().abs().max()) == 0  # zero output layer before training
    assert ScoreUNet(channels=8, mults=(1, 2, 2)).factor == 4
    with pytest.raises(InputError, match="divisible by 2"):
        net(torch.randn(1, 3, 9, 8), 0.1)
    with pytest.raises(InputError, match="mults"):
        ScoreUNet(mults=())


# ------------------------------------------------------------------------------------------ the defense


def test_t_star_0_returns_the_input_exactly(score_file, images):
    defense = irad.load_defense("diffpure", weights=score_file, t_star=0.0)
    assert torch.equal(defense(images), images)


def test_shape_dtype_range_and_randomness(score_file, images):
    defense = irad.load_defense("diffpure", weights=score_file, steps=4, seed=3)
    # a fixed seed makes every call draw the same noise: deterministic; without one it is randomized
    assert not is_randomized(defense) and not defense.randomized
    assert is_randomized(irad.load_defense("diffpure", weights=score_file, steps=4))
    out = defense(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1 and not torch.allclose(out, images, atol=1e-3)
    assert defense(images.double()).dtype == torch.float64
    assert torch.equal(defense(images), out)  # seeded: reproducible per call
    other = irad.load_defense("diffpure", weights=score_file, steps=4, seed=4)
    assert not torch.allclose(other(images), out)
    unseeded = irad.load_defense("diffpure", weights=score_file, steps=4)
    assert not torch.allclose(unseeded(images), unseeded(images))


def test_checkpointed_gradients_equal_plain_gradients(images, monkeypatch):
    defense = DiffPure(tiny_unet(), t_star=0.1, steps=5, seed=0)
    weight = torch.randn(images.shape, generator=torch.Generator().manual_seed(1))
    calls = []
    real_checkpoint = diffpure_module.checkpoint
    monkeypatch.setattr(diffpure_module, "checkpoint", lambda *a, **k: calls.append(1) or real_checkpoint(*a, **k))

    def grad(checkpointing: bool) -> torch.Tensor:
        defense.checkpointing = checkpointing
        x = images.clone().requires_grad_(True)
        (defense(x) * weight).sum().backward()
        return x.grad

    g_ckpt = grad(True)
    assert len(calls) == 5  # one checkpoint per reverse step
    g_plain = grad(False)
    assert len(calls) == 5
    assert torch.isfinite(g_ckpt).all() and float(g_ckpt.abs().sum()) > 0
    torch.testing.assert_close(g_ckpt, g_plain, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        defense.checkpointing = True
        defense(images)
    assert len(calls) == 5  # no checkpointing without gradients


@pytest.mark.parametrize("kw, error, match", [
    ({"t_start": 0.1}, InputError, "did you mean 't_star'"),
    ({"t_star": -0.1}, InputError, "t_star"),
    ({"t_star": 1.5}, InputError, "t_star"),
    ({"steps": 0}, InputError, "steps"),
    ({"steps": 2.5}, InputError, "steps"),
    ({"seed": "a"}, InputError, "seed"),
])
def test_bad_parameters(score_file, kw, error, match):
    with pytest.raises(error, match=match):
        irad.load_defense("diffpure", weights=score_file, **kw)


def test_bad_inputs_missing_and_wrong_weights(score_file, images, clean_env):
    defense = irad.load_defense("diffpure", weights=score_file, steps=1)
    with pytest.raises(InputError, match="batch"):
        defense(images[0])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        defense(images * 255)
    with pytest.raises(InputError, match="divisible by 2"):
        defense(images[:, :, :7, :8])
    with pytest.raises(WeightsError, match="not diffpure"):
        irad.load_defense("diffpure", weights=resolve_weights("stl-cifar10-cpu")[1])
    with pytest.warns(UserWarning, match="t_max=0.2"):
        irad.load_defense("diffpure", weights=score_file, t_star=0.5)


def test_irad_plus_diffpure_composes(score_file, images, tmp_path):
    irad_file = make_random_weights(tmp_path / "irad.safetensors", n_resblocks=1, n_feats=8, hidden=(16, 16))
    both = irad.load_defense("irad+diffpure", weights=score_file, irad_weights=irad_file, steps=2, seed=0)
    assert not is_randomized(both) and both.diffpure.t_star == 0.02 and both.diffpure.steps == 2
    with torch.no_grad():
        out = both(images)
    assert out.shape == images.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    first = irad.load_defense("diffpure", weights=score_file, t_star=0.02, steps=2, seed=0)
    second = irad.load_defense("irad", weights=irad_file)
    with torch.no_grad():
        torch.testing.assert_close(out, second(first(images)))
    with pytest.raises(InputError, match="did you mean 'irad_weights'"):
        irad.load_defense("irad+diffpure", weights=score_file, irad_weight=irad_file)


# ------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, write_npz):
    """CIFAR-10 format training file: 16x16 corners of 24 shipped test images (the last 8 are validation)."""
    root = tmp_path_factory.mktemp("data")
    ds = irad.load_dataset("cifar10", "test")
    write_npz(root / "cifar10" / "train.npz", ds.images[:24, :16, :16], ds.labels[:24])
    return root


TOY = DiffusionConfig(channels=8, steps=4, batch_size=4, lr=2e-3, warmup=0, ema=0.5, val_images=8, val_size=8,
                      eval_every=2)


def _records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_training_writes_loadable_weights_and_resumes(data_root, tmp_path, monkeypatch):
    path = train_diffusion(TOY, tmp_path / "run", data_root=data_root, device="cpu", progress=False,
                           command=["irad", "train", "diffusion"])
    records = _records(tmp_path / "run")
    assert [r["step"] for r in records if "loss" in r] == [2, 4]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["val_loss"]) for r in records if "loss" in r)
    meta = read_meta(path)
    assert (meta["kind"], meta["arch"], meta["architecture"]["channels"]) == ("defense", "diffpure", 8)
    assert meta["spec"] == {"name": "score-unet", "args": meta["architecture"]}
    assert meta["settings"]["t_max"] == 0.2 and meta["command"] == "irad train diffusion"
    defense = irad.load_defense("diffpure", weights=path, steps=2, seed=0)
    assert defense.score.channels == 8 and defense(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)

    weights = load_state_dict_file(path)
    train_diffusion(TOY, tmp_path / "run", data_root=data_root, device="cpu", progress=False)  # complete: no steps
    assert [r.get("event") for r in _records(tmp_path / "run")][len(records):] == ["resume", "done"]
    assert all(torch.equal(v, load_state_dict_file(path)[k]) for k, v in weights.items())

    calls = []  # interrupt a second run at its step-4 evaluation, after the step-2 checkpoint
    real = training_module.validation_loss
    monkeypatch.setattr(training_module, "validation_loss",
                        lambda *a: calls.append(1) or (real(*a) if len(calls) < 4 else 1 / 0))
    with pytest.raises(ZeroDivisionError):
        train_diffusion(TOY, tmp_path / "cut", data_root=data_root, device="cpu", progress=False)
    monkeypatch.setattr(training_module, "validation_loss", real)
    resumed = train_diffusion(TOY, tmp_path / "cut", data_root=data_root, device="cpu", progress=False)
    assert [r["step"] for r in _records(tmp_path / "cut") if "loss" in r] == [2, 4]  # step 2 not redone
    assert all(torch.allclose(v, load_state_dict_file(resumed)[k]) for k, v in weights.items())
    with pytest.raises(InputError, match="other settings"):
        train_diffusion(DiffusionConfig(**{**TOY.__dict__, "t_max": 0.3}), tmp_path / "run", data_root=data_root,
                        progress=False)


def test_a_short_training_lowers_the_validation_loss(data_root, tmp_path):
    cfg = DiffusionConfig(**{**TOY.__dict__, "steps": 30, "batch_size": 8, "eval_every": 30, "ema": 0.0})
    train_diffusion(cfg, tmp_path / "run", data_root=data_root, device="cpu", progress=False)
    records = _records(tmp_path / "run")
    start, end = records[0]["val_loss"], records[-2]["val_loss"]
    assert start == pytest.approx(1.0, abs=0.2) and end < 0.9 * start  # ε̂ = 0 at step 0 scores E[ε²] ≈ 1


def test_training_refuses_bad_settings(data_root, tmp_path):
    with pytest.raises(InputError, match="t_min < t_max"):
        train_diffusion(DiffusionConfig(t_min=0.3, t_max=0.2), tmp_path / "a", data_root=data_root, progress=False)
    with pytest.raises(InputError, match="divisible by 32"):
        train_diffusion(DiffusionConfig(**{**TOY.__dict__, "mults": (1,) * 6}), tmp_path / "b",
                        data_root=data_root, progress=False)


def test_train_diffusion_command(data_root, tmp_path):
    res = CliRunner().invoke(cli, ["train", "diffusion", "--data", str(data_root), "--out", str(tmp_path / "cli"),
                                   "--channels", "4", "--mults", "1,2", "--steps", "1", "--batch-size", "2",
                                   "--val-images", "2", "--val-size", "8", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    meta = read_meta(tmp_path / "cli" / "diffpure.safetensors")
    assert meta["config"]["steps"] == 1 and meta["architecture"]["mults"] == [1, 2]
    res = CliRunner().invoke(cli, ["train", "diffusion", "--out", str(tmp_path / "bad"), "--mults", "1,x"])
    assert res.exit_code != 0 and "comma-separated" in res.output


def test_shipped_score_model_is_the_default_and_predicts_the_noise():
    """The shipped score model (sha256-checked on load) is what both defenses use by default, and at the diffusion
    times purification visits it predicts the added noise far better than chance (MSE 1 for a zero predictor)."""
    from irad.defenses.diffpure import load_score_model
    from irad.diffusion import to_model_range
    from irad.weights import WEIGHTS

    sha = WEIGHTS["diffpure-cifar10-cpu"].sha256
    assert irad.load_defense("diffpure").meta["sha256"] == sha
    assert irad.load_defense("irad+diffpure").meta["diffpure"]["sha256"] == sha
    model, sde, _ = load_score_model()
    x = to_model_range(irad.load_dataset("cifar10", "test").tensors(16, 900)[0])  # images the tables do not use
    gen = torch.Generator().manual_seed(0)
    for t, bound in ((0.02, 0.5), (0.1, 0.2)):
        noise = torch.randn(x.shape, generator=gen)
        with torch.no_grad():
            mse = float((model(sde.marginal(x, t, noise), torch.full((len(x),), t)) - noise).pow(2).mean())
        assert mse < bound, (t, mse)


def test_a_checkpoint_of_the_older_diffusion_loop_resumes_to_the_same_weights(data_root, tmp_path):
    """A run killed under the loop diffusion training had before it shared ``train_steps`` (``model`` and ``ema``
    state dicts side by side in checkpoint.pt) resumes from it and ends where an uninterrupted run does."""
    from irad.training.rundir import RunDir

    full = load_state_dict_file(train_diffusion(TOY, tmp_path / "full", data_root=data_root, device="cpu",
                                                progress=False))
    half = DiffusionConfig(**{**TOY.__dict__, "steps": 2})
    train_diffusion(half, tmp_path / "half", data_root=data_root, device="cpu", progress=False)
    ckpt = torch.load(tmp_path / "half" / "checkpoint.pt", weights_only=True)
    model = {k.removeprefix("model."): v for k, v in ckpt["model"].items() if k.startswith("model.")}
    ema = {k.removeprefix("ema."): v for k, v in ckpt["model"].items() if k.startswith("ema.")}
    config = {**ckpt["config"], "steps": TOY.steps}
    RunDir(tmp_path / "old", None).save_checkpoint({"model": model, "ema": ema, "optimizer": ckpt["optimizer"],
                                                    "step": 2, "history": [{"step": 2, "val_loss": 1.0}],
                                                    "config": config})
    resumed = load_state_dict_file(train_diffusion(TOY, tmp_path / "old", data_root=data_root, device="cpu",
                                                   progress=False))
    assert [r["step"] for r in _records(tmp_path / "old") if "loss" in r] == [4]  # steps 1-2 not redone
    assert all(torch.equal(v, resumed[k]) for k, v in full.items())
