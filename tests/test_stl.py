"""STL (Sun et al., CVPR 2019): the low-pass against a dense solve, FISTA against least squares, the sparse
projection's effect on clean and perturbed images, gradients, errors, the shipped dictionary and training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import irad
from irad.cli.main import cli
from irad.defenses.stl import (
    SparseTransformationLayer,
    fista,
    lipschitz_constant,
    synthesize,
    tikhonov_lowpass,
)
from irad.errors import InputError, WeightsError
from irad.training.stl import STLConfig, train_stl
from irad.weights import WEIGHTS, load_state_dict_file, read_meta, resolve_weights


@pytest.fixture(scope="module")
def cifar():
    return irad.load_dataset("cifar10", "test").tensors(8)[0]


@pytest.fixture(scope="module")
def shipped():
    return irad.load_defense("stl")


def tiny_atoms(k: int = 8, s: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(k, 3, s, s, generator=torch.Generator().manual_seed(seed))


def rms(a: torch.Tensor) -> torch.Tensor:
    return a.pow(2).flatten(1).mean(1).sqrt()


# ------------------------------------------------------------------------------------------ the parts


def test_lowpass_is_the_tikhonov_solution_with_neumann_boundaries():
    """(I + lam (L_H (x) I + I (x) L_W)) l = x with path-graph Laplacians, solved densely."""
    h, w, lam = 5, 7, 3.0

    def path_laplacian(n: int) -> np.ndarray:
        d = np.diff(np.eye(n), axis=0)  # forward differences, (n-1) x n
        return d.T @ d

    a = np.eye(h * w) + lam * (np.kron(path_laplacian(h), np.eye(w)) + np.kron(np.eye(h), path_laplacian(w)))
    x = torch.rand(2, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    dense = np.linalg.solve(a, x.reshape(6, -1).numpy().T).T.reshape(2, 3, h, w)
    np.testing.assert_allclose(tikhonov_lowpass(x, lam).numpy(), dense, atol=1e-12)
    const = torch.full((1, 3, 4, 9), 0.3)
    torch.testing.assert_close(tikhonov_lowpass(const, 10.0), const)
    assert torch.equal(tikhonov_lowpass(x, 0.0), x)
    low = tikhonov_lowpass(torch.rand(4, 3, 16, 16), 5.0)  # an averaging filter keeps [0, 1]
    assert float(low.min()) >= -1e-6 and float(low.max()) <= 1 + 1e-6


def test_power_iteration_bounds_the_frequency_response():
    """The FISTA step 1/L is safe: L >= sup over frequencies of the largest eigenvalue of D(w) D(w)^H."""
    atoms = tiny_atoms(16, 5)
    spec = torch.fft.fft2(atoms.double(), s=(128, 128))
    symbol = torch.einsum("kcuv,kduv->uvcd", spec, spec.conj())
    assert lipschitz_constant(atoms) >= float(torch.linalg.eigvalsh(symbol).max())


def test_fista_with_lam_0_recovers_a_signal_in_the_span():
    atoms = tiny_atoms()
    codes = torch.randn(2, 8, 10, 10, generator=torch.Generator().manual_seed(1))
    codes = codes * (torch.rand(codes.shape, generator=torch.Generator().manual_seed(2)) < 0.1)
    signal = synthesize(codes, atoms)  # 8 x 8 images in the span of the dictionary
    z = fista(signal, atoms, 0.0, 500, lipschitz_constant(atoms))
    assert float(rms(synthesize(z, atoms) - signal).max()) < 1e-4 * float(rms(signal).min())


def test_lam_0_reconstructs_and_large_lam_gives_the_low_pass():
    x = 0.2 + 0.6 * torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    exact = SparseTransformationLayer(tiny_atoms(), lam=0.0, iterations=300, lowpass=5.0)
    torch.testing.assert_close(exact(x), x, atol=1e-5, rtol=0)  # overcomplete: every image is in the span
    blunt = SparseTransformationLayer(tiny_atoms(), lam=1e4, iterations=20, lowpass=5.0)
    low, high = blunt.split(x)
    assert torch.equal(blunt.codes(high), torch.zeros_like(blunt.codes(high)))
    assert torch.equal(blunt(x), low.clamp(0, 1))
    assert not torch.allclose(low, x, atol=1e-2)  # the low-pass really removed something


# ------------------------------------------------------------------------------------------ the defense


def test_shape_range_determinism_and_any_size(shipped, cifar):
    out = shipped(cifar[:4])
    assert out.shape == cifar[:4].shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(out, shipped(cifar[:4])) and not irad.defenses.is_randomized(shipped)
    odd = torch.rand(1, 3, 13, 21, generator=torch.Generator().manual_seed(0))
    assert shipped(odd).shape == odd.shape


def test_defaults_keep_clean_images_close(shipped, cifar):
    psnr = 10 * torch.log10(1 / (shipped(cifar) - cifar).pow(2).flatten(1).mean(1))
    assert float(psnr.mean()) > 30


def test_high_frequency_noise_is_removed(shipped, cifar):
    """A perturbation with the energy of an L-inf 8/255 sign pattern and no low frequencies: the output is closer to
    the clean image than the input, and at most half of the perturbation gets through."""
    signs = torch.randint(0, 2, cifar.shape, generator=torch.Generator().manual_seed(0)).float() * 2 - 1
    noise = signs - tikhonov_lowpass(signs, 5.0)
    noise = noise / rms(noise)[:, None, None, None] * (8 / 255)
    noisy = (cifar + noise).clamp(0, 1)
    out, clean_out = shipped(noisy), shipped(cifar)
    assert float(rms(out - cifar).mean()) < 0.95 * float(rms(noisy - cifar).mean())
    assert float((rms(out - clean_out) / rms(noisy - cifar)).max()) < 0.5


def test_gradients_are_finite_and_nonzero(cifar):
    defense = irad.load_defense("stl", iterations=10)
    x = cifar[:2].clone().requires_grad_(True)
    defense(x).sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("kw, match", [({"lam": -0.1}, "lam"), ({"iterations": 0}, "iterations"),
                                       ({"iterations": 2.5}, "iterations"), ({"lowpass": -1.0}, "lowpass"),
                                       ({"lamda": 0.1}, "did you mean 'lam'")])
def test_bad_parameters(kw, match):
    with pytest.raises(InputError, match=match):
        irad.load_defense("stl", **kw)


def test_bad_inputs_and_dictionaries(shipped, cifar):
    with pytest.raises(InputError, match="batch"):
        shipped(cifar[0])
    with pytest.raises(InputError, match="channels"):
        shipped(cifar[:, :1])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        shipped(cifar * 255)
    with pytest.raises(InputError, match="K x C x s x s"):
        SparseTransformationLayer(torch.randn(8, 3, 3))
    with pytest.raises(InputError, match="finite"):
        SparseTransformationLayer(torch.full((2, 3, 3, 3), float("nan")))


# ------------------------------------------------------------------------------------------ shipped weights


def test_shipped_dictionary_is_registered_verified_and_the_default(shipped):
    spec, path = resolve_weights("stl-cifar10-cpu")  # verifies the sha256
    assert (spec.kind, spec.arch, spec.dataset) == ("defense", "stl", "cifar10")
    meta = read_meta(path)
    assert meta["sha256"] == spec.sha256 and meta["command"].startswith("irad train stl")
    atoms = load_state_dict_file(path)["atoms"]
    assert atoms.shape == (64, 3, 7, 7)
    torch.testing.assert_close(atoms.flatten(1).norm(dim=1), torch.ones(64))  # unit-norm atoms
    assert torch.equal(shipped.atoms, atoms)
    settings = meta["settings"]
    assert (shipped.lam, shipped.iterations, shipped.lowpass) == (settings["lam"], settings["iterations"],
                                                                  settings["lowpass"])
    assert "stl-cifar10-cpu" in WEIGHTS.names()


def test_a_corrupted_dictionary_file_fails_its_checksum(tmp_path):
    _, path = resolve_weights("stl-cifar10-cpu")
    copy = tmp_path / "stl.safetensors"
    copy.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)  # the last tensor's bytes; the metadata intact
    with pytest.raises(WeightsError, match="sha256"):
        irad.load_defense("stl", weights=copy)


def test_a_file_that_is_not_a_dictionary_is_refused():
    _, path = resolve_weights("resnet20-idelbayev")
    with pytest.raises(WeightsError, match="not stl; learn a dictionary"):
        irad.load_defense("stl", weights=path)
    assert irad.load_defense("stl", weights="stl-cifar10-cpu", iterations=1).atoms.shape == (64, 3, 7, 7)


def test_other_datasets_fall_back_to_the_cifar10_dictionary_with_a_warning():
    with pytest.warns(UserWarning, match="no stl weights trained on cifar100"):
        defense = irad.load_defense("stl", dataset="cifar100", iterations=1)
    assert defense.meta["dataset"] == "cifar10"


# ------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A tiny CIFAR-10-format training file: 30 images of 12x12 (the last 10 are the validation split)."""
    root = tmp_path_factory.mktemp("data")
    (root / "cifar10").mkdir()
    rng = np.random.default_rng(0)
    smooth = rng.integers(0, 256, (30, 4, 4, 3)).repeat(3, axis=1).repeat(3, axis=2).astype(np.uint8)
    np.savez(root / "cifar10" / "train.npz", images=smooth, labels=rng.integers(0, 10, 30))
    return root


def test_training_writes_a_loadable_dictionary_and_resumes(data_root, tmp_path):
    cfg = STLConfig(atoms=6, size=3, lam=0.02, iterations=10, train_iterations=10, images=20, steps=4, batch_size=4,
                    crop=8, val_images=4, val_size=10, eval_every=2)
    path = train_stl(cfg, tmp_path / "run", data_root=data_root, device="cpu", command=["irad", "train", "stl"],
                     progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r.get("step") for r in records if "step" in r] == [2, 4]
    assert all(np.isfinite(r["val_psnr"]) and r["val_psnr"] > r["val_psnr_lowpass"] for r in records if "step" in r)
    meta = read_meta(path)
    assert (meta["kind"], meta["arch"], meta["settings"]["lam"]) == ("defense", "stl", 0.02)
    assert meta["spec"]["name"] == "stl" and meta["spec"]["args"]["lam"] == 0.02
    defense = irad.load_defense("stl", weights=path)
    assert defense.atoms.shape == (6, 3, 3, 3) and defense.iterations == 10
    torch.testing.assert_close(defense.atoms.flatten(1).norm(dim=1), torch.ones(6))
    before = load_state_dict_file(path)["atoms"]
    train_stl(cfg, tmp_path / "run", data_root=data_root, device="cpu", progress=False)  # complete: resumes at 4
    assert torch.equal(load_state_dict_file(path)["atoms"], before)
    with pytest.raises(InputError, match="other settings"):
        train_stl(STLConfig(**{**cfg.__dict__, "lam": 0.05}), tmp_path / "run", data_root=data_root,
                  device="cpu", progress=False)


def test_training_refuses_bad_settings(data_root, tmp_path):
    with pytest.raises(InputError, match="crop"):
        train_stl(STLConfig(crop=64, val_size=10, images=20), tmp_path / "bad", data_root=data_root, progress=False)
    with pytest.raises(InputError, match="lam"):
        train_stl(STLConfig(lam=-1.0), tmp_path / "bad2", data_root=data_root, progress=False)


def test_train_stl_command(data_root, tmp_path):
    res = CliRunner().invoke(cli, ["train", "stl", "--data", str(data_root), "--out", str(tmp_path / "cli"),
                                   "--atoms", "4", "--size", "3", "--steps", "2", "--crop", "8", "--batch-size", "2",
                                   "--iterations", "5", "--train-iterations", "5", "--images", "20",
                                   "--val-images", "2", "--val-size", "10", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    meta = read_meta(tmp_path / "cli" / "stl.safetensors")
    assert meta["config"]["steps"] == 2 and meta["settings"]["atoms"] == 4
    res = CliRunner().invoke(cli, ["train", "stl", "--data", str(data_root), "--out", str(tmp_path / "cli2"),
                                   "--lam", "-1"])
    assert res.exit_code != 0 and "-1" in res.output


def test_training_killed_and_resumed_learns_the_same_dictionary(data_root, tmp_path, monkeypatch):
    """Killed after a checkpoint, the run resumes there and ends with the atoms of an uninterrupted run, bit for
    bit; so does a checkpoint in the layout of the loop STL had before it shared ``train_steps``."""
    import irad.training.loop as loop
    from irad.training.rundir import RunDir

    cfg = STLConfig(atoms=6, size=3, lam=0.02, iterations=10, train_iterations=10, images=20, steps=5, batch_size=4,
                    crop=8, val_images=4, val_size=10, eval_every=2)
    full = load_state_dict_file(train_stl(cfg, tmp_path / "full", data_root=data_root, progress=False))["atoms"]

    real_log = loop.RunDir.log

    def dying_log(self, record, echo=True):  # killed while logging step 4: the last checkpoint is step 2's
        real_log(self, record, echo)
        if record.get("step") == 4 and "event" not in record:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop.RunDir, "log", dying_log)
    with pytest.raises(KeyboardInterrupt):
        train_stl(cfg, tmp_path / "killed", data_root=data_root, progress=False)
    monkeypatch.setattr(loop.RunDir, "log", real_log)
    old_layout = RunDir(tmp_path / "old", None)
    ckpt = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 2
    old_layout.save_checkpoint({"atoms": ckpt["model"]["atoms"], "optimizer": ckpt["optimizer"], "step": 2,
                                "history": [{"step": 2, "val_psnr": 1.0}], "config": ckpt["config"]})
    for folder in ("killed", "old"):
        resumed = train_stl(cfg, tmp_path / folder, data_root=data_root, progress=False)
        assert torch.equal(load_state_dict_file(resumed)["atoms"], full), folder
        records = [json.loads(line) for line in (tmp_path / folder / "log.jsonl").read_text().splitlines()]
        assert {"event": "resume", "step": 2}.items() <= next(r for r in records if r.get("event") == "resume").items()
