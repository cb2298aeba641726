"""Classic baselines of Table 2 against their defining properties."""

from __future__ import annotations

import pytest
import torch

import irad
from irad.errors import InputError


@pytest.fixture(scope="module")
def cifar():
    return irad.load_dataset("cifar10").tensors(16)[0]


def test_bit_reduction_8_bits_is_identity_on_8_bit_images(cifar):
    assert torch.equal(irad.load_defense("bit-reduction", bits=8)(cifar), cifar)


def test_bit_reduction_has_2_pow_b_levels(cifar):
    out = irad.load_defense("bit-reduction", bits=2)(cifar)
    levels = torch.tensor([0.0, 1 / 3, 2 / 3, 1.0])
    assert (out.reshape(-1, 1) - levels).abs().min(dim=1).values.max() < 1e-6
    assert (out - cifar).abs().max() <= 1 / 6 + 1e-6  # rounding moves a value by at most half a level


def test_median_window_1_is_identity_and_3_is_the_median(cifar):
    assert torch.equal(irad.load_defense("median", window=1)(cifar), cifar)
    out = irad.load_defense("median", window=3)(cifar)
    i, j = 10, 17  # an interior pixel: compare with the median of its 3x3 neighbourhood
    patch = cifar[:, :, i - 1:i + 2, j - 1:j + 2].reshape(16, 3, 9)
    torch.testing.assert_close(out[:, :, i, j], patch.median(dim=-1).values)


def test_jpeg_quality_100_is_close_to_identity_and_lower_quality_is_not(cifar):
    err100 = (irad.load_defense("jpeg", quality=100)(cifar) - cifar).abs().mean()
    err30 = (irad.load_defense("jpeg", quality=30)(cifar) - cifar).abs().mean()
    assert err100 < 0.012 and err30 > 2 * err100


def test_differentiable_jpeg_tracks_the_real_codec(cifar):
    for q in (90, 50):
        real = irad.load_defense("jpeg", quality=q)(cifar)
        approx = irad.load_defense("jpeg", quality=q, differentiable=True)(cifar)
        codec_error = (real - cifar).abs().mean()
        assert (approx - real).abs().mean() < 0.5 * codec_error


def test_randomization_is_random_reproducible_and_shape_preserving(cifar):
    a = irad.load_defense("randomization", seed=1)(cifar)
    b = irad.load_defense("randomization", seed=1)(cifar)
    c = irad.load_defense("randomization", seed=2)(cifar)
    assert a.shape == cifar.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert irad.defenses.is_randomized(irad.load_defense("randomization"))


@pytest.mark.parametrize("name, kw", [("bit-reduction", {}), ("jpeg", {}), ("median", {}), ("randomization", {}),
                                      ("jpeg", {"differentiable": True})])
def test_shape_range_and_finite_gradients(name, kw, cifar):
    x = cifar[:4].clone().requires_grad_(True)
    y = irad.load_defense(name, **kw)(x)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    if y.requires_grad:
        y.sum().backward()
        assert torch.isfinite(x.grad).all()
    if kw.get("differentiable") or name in ("median", "randomization"):
        assert x.grad is not None and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("name, kw", [("bit-reduction", {"bits": 0}), ("jpeg", {"quality": 0}),
                                      ("median", {"window": 2})])
def test_bad_parameters(name, kw):
    with pytest.raises(InputError):
        irad.load_defense(name, **kw)
