"""The shipped IRAD weights (CPU recipe, scripts/recipe_cpu.sh): found by default, checksum-verified, and doing what a
purifier must do on images it never saw during training (the shipped test sample), against a victim (ResNet-32)
that was not used to train it."""

from __future__ import annotations


import pytest
import torch

import irad
from irad.attacks import build_attack
from irad.errors import InputError, WeightsError
from irad.weights import WEIGHTS, resolve_weights

from helpers import tensors_sha256

pytestmark = pytest.mark.usefixtures("clean_env", "one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    return irad.load_dataset("cifar10", "test").tensors(32, 500)  # images the tables' first 500 do not hold


def test_the_default_irad_is_the_shipped_file_and_is_verified(tmp_path):
    catalogued = WEIGHTS["irad-cifar10-cpu"].sha256
    defense = irad.load_defense("irad")
    assert defense.meta["sha256"] == catalogued
    assert "resnet32" not in defense.meta["trained_against"]
    _, path = resolve_weights("irad-cifar10-cpu")
    assert tensors_sha256(path) == catalogued  # the tensors themselves, hashed here
    # A copy with one flipped byte in the tensors, loaded by path (its metadata intact), is refused.
    data = bytearray(path.read_bytes())
    data[len(data) - len(data) // 4] ^= 0x01
    copy = tmp_path / "irad.safetensors"
    copy.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        irad.load_defense("irad", weights=copy)


def test_shipped_implicit_reconstruction_keeps_clean_images(images):
    x, _ = images
    with torch.no_grad():
        out = irad.load_defense("disco")(x)
    psnr = -10 * torch.log10(((out - x) ** 2).mean(dim=(1, 2, 3)))
    assert out.shape == x.shape and psnr.mean() > 28.0  # validation (adversarial in, clean out) reached 32.7 dB


def test_shipped_irad_restores_accuracy_under_pgd_on_an_unseen_victim(images):
    x, y = images
    victim = irad.load_classifier("resnet32", weights="default")
    adv = build_attack("pgd", victim, eps=8 / 255, seed=0, steps=10)(x, y)
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6
    defended = irad.defend(victim, irad.load_defense("irad"))
    with torch.no_grad():
        undefended_acc = (victim(adv).argmax(1) == y).float().mean().item()
        defended_acc = (defended(adv).argmax(1) == y).float().mean().item()
        clean_acc = (defended(x).argmax(1) == y).float().mean().item()
    assert undefended_acc <= 0.05  # the attack works on the bare victim
    assert defended_acc >= 0.25  # oblivious setting: the purifier undoes a real share of it
    assert clean_acc >= 0.70


def test_bf16_precision_tracks_fp32(images):
    """`precision="bf16"` (autocast) really computes in bfloat16 (the output moves) yet stays within 2/255 of fp32,
    and keeps the input's dtype; an unknown precision is refused."""
    x = images[0][:8]
    with torch.no_grad():
        fp32 = irad.load_defense("irad")(x)
        bf16 = irad.load_defense("irad", precision="bf16")(x)
    assert bf16.dtype == x.dtype and bf16.shape == x.shape
    assert 0 < float((bf16 - fp32).abs().max()) < 2 / 255
    with pytest.raises(InputError, match="precision 'fp16'.*fp32, bf16"):
        irad.load_defense("disco", precision="fp16")


def test_default_precision_follows_a_callers_autocast(images):
    """precision="fp32" adds no autocast context of its own, so inside a caller's bf16 autocast it computes in bf16
    like `precision="bf16"` does (an `autocast(enabled=False)` there would silently switch the caller's off)."""
    x = images[0][:4]
    with torch.no_grad():
        fp32 = irad.load_defense("disco")(x)
        own_bf16 = irad.load_defense("disco", precision="bf16")(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside = irad.load_defense("disco")(x)
    assert float((inside - fp32).abs().max()) > 1e-4  # really bf16, not silently fp32
    assert torch.allclose(inside, own_bf16, atol=1e-6)


def test_bf16_gathers_and_mlp_rows_stay_bf16(images):
    """Under bf16 autocast the per-latent-code table that the decoder gathers from (and the grid rows of SampleNet)
    stay bfloat16: an fp32 bias added to them would promote them, and the gather, the memory-bound part, would move
    twice the bytes."""
    from torch.overrides import TorchFunctionMode

    gathered, mlp_inputs = [], []

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.Tensor.index_select:
                gathered.append(args[0].dtype)
            if func is torch.addmm:
                mlp_inputs.append(args[1].dtype)
            return func(*args, **(kwargs or {}))

    defense = irad.load_defense("irad", precision="bf16")
    with torch.no_grad(), Record():
        defense(images[0][:2])
    assert gathered and set(gathered) == {torch.bfloat16}
    assert mlp_inputs and set(mlp_inputs) == {torch.bfloat16}
