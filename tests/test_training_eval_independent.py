"""Training really learns, and the transfer threat model really attacks with the surrogate, each checked against a
fact computed here rather than read back from the code under test: accuracies and PSNRs recomputed from the saved
weights, cross-entropies recomputed with the classifier, crops enumerated with NumPy's own reflect padding,
learning rates worked out by hand, and the FGSM examples rebuilt with ``build_attack``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import irad
from irad.attacks import build_attack
from irad.classifiers import load_classifier
from irad.cli.main import cli
from irad.evaluation import scoring
from irad.reconstruction import ImplicitReconstruction
from irad.reconstruction.base import pixel_grid
from irad.training.augment import random_crop_flip
from irad.training.classifier import ClassifierRecipe, _lr_at, train_classifier
from irad.training.implicit import ImplicitConfig, train_implicit
from irad.training.pairs import AdversarialPairs, PairsConfig, craft_pairs
from irad.training.samplenet import SampleNetConfig, train_samplenet

from helpers import header_meta

pytestmark = pytest.mark.usefixtures("clean_env", "one_thread")


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of the per-image PSNR (dB) for values in [0, 1]."""
    return float((-10 * torch.log10(((a - b) ** 2).mean(dim=(1, 2, 3)))).mean())


# ------------------------------------------------------------------------------------- (a) classifier training


def _brightest_channel_data(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is the colour channel that is brightest: noise in 0..127 everywhere, +100 on channel c."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 128, (n, size, size, 3))
    images[np.arange(n), :, :, labels] += 100
    images = images.astype(np.uint8)
    assert np.array_equal(images.reshape(n, -1, 3).mean(1).argmax(1), labels)  # the label is the brightest channel
    return images, labels


def test_classifier_training_learns_a_learnable_task(tmp_path, write_npz):
    images, labels = _brightest_channel_data(400, 8, seed=0)
    write_npz(tmp_path / "data" / "cifar10" / "train.npz", images, labels)
    recipe = ClassifierRecipe(arch="resnet20", epochs=6, batch_size=50, lr=0.05, val_size=100, seed=0)
    weights = train_classifier(recipe, tmp_path / "run", data_root=tmp_path / "data", device="cpu", progress=False)

    # Held-out images: the last 100 of the file (never trained on); accuracy recomputed from the saved weights.
    model = load_classifier("resnet20", weights=weights)
    with torch.no_grad():
        pred = model(_to_tensor(images[-100:])).argmax(1).numpy()
    val_acc = float((pred == labels[-100:]).mean())
    assert val_acc > 0.9  # chance is 1/3
    meta = header_meta(weights)
    assert meta["val_accuracy"] == pytest.approx(val_acc)


# ------------------------------------------------------------------------------------ (d) crop-and-flip augment


def test_random_crop_flip_outputs_are_reflect_padded_crops_possibly_flipped():
    pad, n, h, w = 2, 64, 6, 7
    x = torch.rand(n, 3, h, w)
    out = random_crop_flip(x, pad=pad, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    seen_offsets, seen_flips = set(), set()
    for i in range(n):
        padded = np.pad(x[i].numpy(), ((0, 0), (pad, pad), (pad, pad)), mode="reflect")  # no edge repeat, like torch
        matches = []
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                crop = padded[:, dy:dy + h, dx:dx + w]
                for flipped in (False, True):
                    cand = crop[:, :, ::-1] if flipped else crop
                    if np.array_equal(out[i].numpy(), cand):
                        matches.append((dy, dx, flipped))
        assert len(matches) == 1, (i, matches)  # random pixels: exactly one crop/flip fits
        seen_offsets.add(matches[0][:2])
        seen_flips.add(matches[0][2])
    assert seen_flips == {False, True} and len(seen_offsets) > 10  # it does translate and flip


def test_random_crop_flip_is_not_zero_or_edge_padding():
    """Hand-worked crop: the 4x4 image of values 0..15 (4 * row + col), padded by 1 and cropped at the top-left
    corner, shows the mirrored row/column 1 (reflect padding), not zeros (constant) or repeated edges (replicate)."""
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(1, 3, 1, 1)
    outs = {tuple(random_crop_flip(x, pad=1, generator=torch.Generator().manual_seed(s))[0, 0].flatten().tolist())
            for s in range(200)}
    corner = (5, 4, 5, 6, 1, 0, 1, 2, 5, 4, 5, 6, 9, 8, 9, 10)
    assert tuple(float(v) for v in corner) in outs
    assert tuple(float(v) for v in range(16)) in outs  # the centre crop, unflipped: the image itself
    assert all(0.0 <= min(o) and max(o) <= 15.0 for o in outs)


# ----------------------------------------------------------------------------------------- (e) learning rate


def test_lr_schedule_hand_values():
    r = ClassifierRecipe(lr=0.2, warmup_fraction=0.2)
    total = 100  # warm-up: 20 steps, then 80 steps of linear decay
    assert _lr_at(0, total, r) == pytest.approx(0.2 * 1 / 20)  # first step: 1/20 of the peak
    assert _lr_at(9, total, r) == pytest.approx(0.1)  # half-way through the warm-up
    assert _lr_at(19, total, r) == pytest.approx(0.2)  # end of the warm-up: the peak
    assert _lr_at(20, total, r) == pytest.approx(0.2)  # first decay step: (100 - 20) / 80 of the peak
    assert _lr_at(60, total, r) == pytest.approx(0.1)  # half-way through the decay
    assert _lr_at(99, total, r) == pytest.approx(0.2 / 80)  # last step
    assert _lr_at(100, total, r) == 0.0  # the end: decayed to 0
    lrs = [_lr_at(s, total, r) for s in range(total)]
    assert max(lrs) == pytest.approx(0.2)
    assert all(a < b for a, b in zip(lrs[:20], lrs[1:20]))  # strictly rising warm-up
    assert all(a > b for a, b in zip(lrs[20:], lrs[21:]))  # strictly falling afterwards
    # a schedule shorter than 1/warmup_fraction steps still warms up for one step, at the full rate
    assert [_lr_at(s, 3, r) for s in range(3)] == pytest.approx([0.2, 0.2, 0.1])


# ------------------------------------------------------------------------- (b, c) implicit and SampleNet training


@pytest.fixture(scope="module")
def smooth_root(tmp_path_factory):
    """40 piecewise-constant 8x8 images (2x2 blocks), the last 10 the validation split; random labels."""
    root = tmp_path_factory.mktemp("smooth")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (40, 4, 4, 3)).repeat(2, axis=1).repeat(2, axis=2).astype(np.uint8)
    (root / "cifar10").mkdir()
    np.savez(root / "cifar10" / "train.npz", images=images, labels=rng.integers(0, 10, 40))
    return root, images


def _recon_output(recon: ImplicitReconstruction, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return recon(x).query(pixel_grid(len(x), x.shape[2], x.shape[3])).clamp(0, 1)


def test_implicit_training_improves_validation_psnr_on_denoising(smooth_root, tmp_path):
    from irad.defenses.resampling import load_irad_parts

    root, images = smooth_root
    cfg = ImplicitConfig(task="gaussian-denoising", epochs=60.0, batch_size=30, lr=5e-3, queries=None, crop=None,
                         residual=False, betas=(0.0, 0.9),  # plain LIIF: compared below with untrained plain LIIFs
                         n_resblocks=1, n_feats=8, hidden=[16, 16], val_size=10, val_images=10, checkpoint_every=1000)
    path = train_implicit(cfg, tmp_path / "imp", data_root=root, progress=False)
    clean = _to_tensor(images[-10:])  # held out
    noisy = (clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(7)) * 8 / 255).clamp(0, 1)
    trained, _, _ = load_irad_parts(path)
    after = _psnr(_recon_output(trained.eval(), noisy), clean)
    before = []
    for seed in range(3):  # untrained networks of the same shape, whatever their initialisation
        torch.manual_seed(seed)
        before.append(_psnr(_recon_output(ImplicitReconstruction(1, 8, (16, 16)).eval(), noisy), clean))
    mid_grey = _psnr(torch.full_like(clean, 0.5), clean)
    assert after > max(before) + 3.0, (after, before)
    assert after > mid_grey + 3.0, (after, mid_grey)


@pytest.fixture(scope="module")
def toy_pairs(smooth_root, tmp_path_factory):
    root, _ = smooth_root
    out = tmp_path_factory.mktemp("pairs")
    kw = dict(surrogate="resnet20", steps=2, shard_size=30, val_size=10)
    craft_pairs(PairsConfig(split="train", **kw), out / "train", data_root=root, progress=False)
    craft_pairs(PairsConfig(split="val", **kw), out / "val", data_root=root, progress=False)
    return out


def test_samplenet_training_lowers_the_classifiers_cross_entropy(smooth_root, toy_pairs, tmp_path):
    from irad.resampling import ImageResampler
    from irad.sampling import SampleNet

    root, _ = smooth_root
    imp_cfg = ImplicitConfig(task="adversarial-denoising", pairs=str(toy_pairs / "train"),
                             val_pairs=str(toy_pairs / "val"), epochs=30.0, batch_size=30, lr=5e-3, n_resblocks=1,
                             n_feats=8, hidden=[16, 16], val_size=10, val_images=10, checkpoint_every=1000)
    implicit = train_implicit(imp_cfg, tmp_path / "imp", data_root=root, progress=False)
    cfg = SampleNetConfig(implicit=str(implicit), pairs=str(toy_pairs / "train"), val_pairs=str(toy_pairs / "val"),
                          surrogate="resnet20", epochs=15.0, batch_size=30, lr=1e-2, val_images=10,
                          checkpoint_every=1000)
    out = train_samplenet(cfg, tmp_path / "sn", data_root=root, progress=False)

    pairs = AdversarialPairs(toy_pairs / "train", root)
    clean, adv, y = pairs.batch(np.arange(len(pairs)))
    x, yy = torch.cat([clean, adv]), torch.cat([y, y])
    classifier = load_classifier("resnet20", weights="default")
    before_defense = irad.load_defense("disco", weights=str(out))  # the same φ, resampled at the pixel grid
    after_defense = irad.load_defense("irad", weights=str(out))
    with torch.no_grad():
        # the zero-initialised SampleNet is the identity sampler: IR with it is φ at the pixel grid
        fresh = SampleNet(8, (16, 16))
        torch.testing.assert_close(ImageResampler(before_defense.reconstruction, fresh)(x), before_defense(x),
                                   atol=1e-5, rtol=0)
        ce_before = float(F.cross_entropy(classifier(before_defense(x)), yy))
        ce_after = float(F.cross_entropy(classifier(after_defense(x)), yy))
    assert ce_after < 0.9 * ce_before, (ce_before, ce_after)


# ------------------------------------------------------------------------------ (2) transfer threat model, CLI


def test_cli_transfer_uses_fgsm_crafted_on_the_surrogate_and_scores_the_victim(tmp_path, monkeypatch):
    scored: list[torch.Tensor] = []
    real_correct = scoring.defended_correct

    def recording_correct(model, images, *args, **kwargs):
        scored.append(images.detach().clone())
        return real_correct(model, images, *args, **kwargs)

    monkeypatch.setattr(scoring, "defended_correct", recording_correct)
    out = tmp_path / "transfer"
    result = CliRunner().invoke(cli, ["evaluate", "-n", "4", "--threat-model", "transfer", "--surrogate", "resnet32",
                                      "--victim", "resnet20", "--defense", "none", "--attack", "fgsm", "--eps",
                                      "8/255", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output

    x, y = irad.load_dataset("cifar10", "test").tensors(4)
    surrogate = load_classifier("resnet32", weights="default")
    victim = load_classifier("resnet20", weights="default")
    expected_adv = build_attack("fgsm", surrogate, eps=8 / 255, seed=0)(x, y)
    on_victim = build_attack("fgsm", victim, eps=8 / 255, seed=0)(x, y)
    assert not torch.equal(expected_adv, on_victim)  # the two crafting models give distinguishable images

    assert len(scored) == 2 and torch.equal(scored[0], x)  # clean images, then the adversarial ones
    used = scored[1]
    torch.testing.assert_close(used, expected_adv, atol=1e-7, rtol=0)
    cached = list((out / "cache").glob("adv-*.npz"))
    assert len(cached) == 1
    with np.load(cached[0]) as f:
        torch.testing.assert_close(torch.from_numpy(f["adv"]), expected_adv, atol=1e-7, rtol=0)

    with torch.no_grad():
        adv_correct = int((victim(expected_adv).argmax(1) == y).sum())
        clean_correct = int((victim(x).argmax(1) == y).sum())
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert len(rows) == 1
    row = rows[0]
    assert row["threat_model"] == "transfer" and row["victim"] == "resnet20"
    assert row["crafted_on"].startswith("resnet32@")
    assert row["adv_correct"] == adv_correct and row["RA"] == pytest.approx(100.0 * adv_correct / 4)
    assert row["clean_correct"] == clean_correct and row["SA"] == pytest.approx(100.0 * clean_correct / 4)
