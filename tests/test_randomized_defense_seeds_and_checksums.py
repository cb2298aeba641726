"""Randomized defenses and composed checksums: randomization draws per image and a seed fixes every call; seeded
samplers and DiffPure report themselves deterministic; irad+diffpure and resample carry a top-level sha256 and
trained_against."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import irad
from irad.defenses import is_randomized
from irad.diffusion import ScoreUNet
from irad.errors import InputError
from irad.reference import make_random_weights
from irad.weights import load_state_dict_file, read_meta, save_weights
from helpers import tensors_sha256

pytestmark = pytest.mark.usefixtures("one_thread", "clean_env")  # see conftest.py


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------- randomization: seeds, per image


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


# ---------------------------------------------------------------------- composed defenses carry a top-level checksum


def _with_trained_against(path: Path, names: list[str]) -> Path:
    meta = {k: v for k, v in read_meta(path).items() if k != "sha256"}
    save_weights(load_state_dict_file(path), path, {**meta, "trained_against": names})
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
    parts = (tensors_sha256(score), tensors_sha256(irad_file))  # the weights' own checksums
    assert both.meta["sha256"] == hashlib.sha256(f"diffpure:{parts[0]}+irad:{parts[1]}".encode()).hexdigest()
    assert both.meta["trained_against"] == ["resnet18", "resnet20", "vgg16"]
    assert both.meta["diffpure"]["sha256"] == parts[0] and both.meta["irad"]["sha256"] == parts[1]
    other = irad.load_defense("irad+diffpure", weights=score, irad_weights=make_random_weights(
        tmp_path / "irad2.safetensors", n_resblocks=1, n_feats=4, hidden=(8,), seed=1), steps=1)
    assert other.meta["sha256"] != both.meta["sha256"]
    resampled = irad.load_defense("resample", weights=irad_file, sampler="si", d=1.0)
    assert resampled.meta["sha256"] == parts[1] and resampled.meta["trained_against"] == ["resnet18", "resnet20"]
    assert getattr(irad.load_defense("resample", reconstruction="bilinear", sampler="si"), "meta", {}) == {}
