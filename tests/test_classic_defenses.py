"""Classic baselines of Table 2 against their defining properties."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import irad
from irad.attacks import THREAT_MODELS
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


@pytest.mark.parametrize("name, kw", [("bit-reduction", {}), ("median", {}), ("randomization", {}),
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


def _linear_classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).eval()


def test_real_jpeg_refuses_full_gradients_and_points_to_bpda(cifar):
    """The real codec has no gradient: differentiating through it must be an error, not a silent zero gradient."""
    jpeg = irad.load_defense("jpeg", quality=50)
    x = cifar[:2].clone().requires_grad_(True)
    with pytest.raises(InputError, match="bpda") as info:
        jpeg(x)
    assert "differentiable=True" in str(info.value)
    full = THREAT_MODELS.build("full-gradient").attacked_model(_linear_classifier(), jpeg)
    with pytest.raises(InputError, match="bpda"):
        full(x)
    # compressing images (no gradient wanted) still works, and gives what the codec gives on plain inputs
    plain = jpeg(cifar[:2])
    with torch.no_grad():
        assert torch.equal(jpeg(x), plain)
    assert torch.equal(jpeg(x.detach()), plain)


def test_real_jpeg_under_bpda_passes_the_classifier_gradient_at_the_compressed_image(cifar):
    """BPDA: forward through the codec, backward as the identity, so d loss / d x is the classifier's gradient
    at jpeg(x); for a linear classifier and loss = sum of logits that is the column sum of its weight."""
    classifier, jpeg = _linear_classifier(), irad.load_defense("jpeg", quality=50)
    attacked = THREAT_MODELS.build("bpda").attacked_model(classifier, jpeg)
    x = cifar[:2].clone().requires_grad_(True)
    logits = attacked(x)
    torch.testing.assert_close(logits, classifier(jpeg(cifar[:2])))
    logits.sum().backward()
    expected = classifier[1].weight.sum(0).reshape(1, 3, 32, 32).expand(2, -1, -1, -1)
    torch.testing.assert_close(x.grad, expected)
    # a whole BPDA attack runs and stays in the eps-ball
    y = classifier(cifar[:2]).argmax(1)
    x_adv = THREAT_MODELS.build("bpda").build_attack(classifier, jpeg, "pgd", eps=8 / 255, steps=2)(cifar[:2], y)
    assert float((x_adv - cifar[:2]).abs().max()) <= 8 / 255 + 1e-6


def test_unknown_defense_parameters_are_refused_with_the_valid_names():
    with pytest.raises(InputError, match="'qualty'.*did you mean 'quality'.*quality, differentiable"):
        irad.load_defense("jpeg", qualty=50)
    with pytest.raises(InputError, match="'gama'.*gamma, seed"):
        irad.load_defense("bilinear-sv", gama=1.0)
    with pytest.raises(InputError, match="'window_size'.*window"):
        irad.load_defense("median", window_size=3)
    with pytest.raises(InputError, match="'bits'.*no parameters"):
        irad.load_defense("none", bits=3)
    # the valid ones still reach the defense (and ``dataset`` is still accepted by the loader)
    assert irad.load_defense("jpeg", dataset="cifar10", quality=50, differentiable=True).quality == 50
    assert irad.load_defense("bit-reduction", bits=2).levels == 3
    assert irad.load_defense("median", window=5).window == 5


def test_resample_defense_checks_its_sampler_parameters():
    with pytest.raises(InputError, match="'gamma'.*reconstruction, sampler, weights, d"):
        irad.load_defense("resample", reconstruction="bilinear", sampler="si", gamma=1.5)  # si takes d
    with pytest.raises(InputError, match="'reconstuction'.*did you mean 'reconstruction'"):
        irad.load_defense("resample", reconstuction="bilinear", sampler="si")
    with pytest.raises(InputError, match="d .the shift in pixels. must be a finite number"):  # not a TypeError
        irad.load_defense("resample", reconstruction="bilinear", sampler="si", d=None)
    module = irad.load_defense("resample", reconstruction="bilinear", sampler="sv", gamma=0.5, seed=1)
    assert module.sampler.gamma == 0.5 and module.sampler.seed == 1


def test_median_window_larger_than_the_image_is_a_clear_error():
    median = irad.load_defense("median", window=11)
    with pytest.raises(InputError, match="at most 9"):
        median(torch.rand(1, 3, 5, 5))
    x = torch.rand(1, 3, 5, 5)
    assert irad.load_defense("median", window=9)(x).shape == x.shape  # the largest window that fits still runs
