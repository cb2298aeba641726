"""``check_images`` / ``check_labels``: every malformed input is an InputError whose message names the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import irad
from irad.errors import InputError, IradError
from irad.utils.validation import check_images, check_labels


def test_valid_batch_is_returned_unchanged():
    x = torch.rand(2, 3, 8, 8)
    assert check_images(x) is x
    edges = torch.zeros(1, 3, 1, 1)
    edges[0, 1] = 1.0
    assert check_images(edges) is edges  # exactly 0 and 1 are allowed
    for dtype in (torch.float16, torch.float64, torch.bfloat16):
        y = x.to(dtype)
        assert check_images(y) is y
    g = torch.rand(2, 3, 4, 4, requires_grad=True)
    assert check_images(g) is g  # works on tensors that require grad


def test_input_error_is_a_value_error():
    with pytest.raises(ValueError):
        check_images(torch.rand(3, 8, 8))
    assert issubclass(InputError, IradError)


@pytest.mark.parametrize("bad", [np.random.rand(2, 3, 8, 8).astype(np.float32), [[0.5]], None, 0.5])
def test_rejects_non_tensors(bad):
    with pytest.raises(InputError, match="torch.Tensor"):
        check_images(bad)


def test_rejects_a_single_image_and_suggests_unsqueeze():
    with pytest.raises(InputError, match=r"unsqueeze\(0\)"):
        check_images(torch.rand(3, 32, 32))


@pytest.mark.parametrize("shape", [(32, 32), (1, 1, 3, 32, 32), (3,)])
def test_rejects_other_dimensionalities(shape):
    with pytest.raises(InputError, match="4 dimensions"):
        check_images(torch.rand(*shape))


def test_rejects_channels_last_and_suggests_permute():
    with pytest.raises(InputError, match=r"permute\(0, 3, 1, 2\)"):
        check_images(torch.rand(2, 32, 32, 3))


def test_rejects_wrong_channel_count_without_permute_hint():
    with pytest.raises(InputError, match="3 channels") as info:
        check_images(torch.rand(2, 1, 32, 32))
    assert "permute" not in str(info.value)
    x = torch.rand(2, 1, 8, 8)
    assert check_images(x, channels=1) is x
    assert check_images(x, channels=None) is x


def test_rejects_an_empty_batch():
    with pytest.raises(InputError, match="empty"):
        check_images(torch.rand(0, 3, 32, 32))


def test_rejects_too_small_images():
    with pytest.raises(InputError, match="8x8"):
        check_images(torch.rand(1, 3, 4, 4), min_size=8)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.int32, torch.bool])
def test_rejects_integer_dtypes(dtype):
    with pytest.raises(InputError, match="floating point"):
        check_images(torch.zeros(2, 3, 4, 4, dtype=dtype))


def test_uint8_hint_says_divide_by_255():
    with pytest.raises(InputError, match="255"):
        check_images(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_rejects_non_finite_values(value):
    x = torch.rand(2, 3, 4, 4)
    x[1, 2, 3, 0] = value
    with pytest.raises(InputError, match="NaN or Inf"):
        check_images(x)


def test_rejects_values_above_one_and_mentions_255_for_8_bit_range():
    x = torch.rand(2, 3, 4, 4) * 255
    with pytest.raises(InputError, match="255") as info:
        check_images(x)
    assert "[0, 1]" in str(info.value)
    y = torch.rand(2, 3, 4, 4)
    y[0, 0, 0, 0] = 1.2  # slightly above 1: not the 0..255 case
    with pytest.raises(InputError, match=r"\[0, 1\]") as info:
        check_images(y)
    assert "255" not in str(info.value)


def test_rejects_negative_values():
    x = torch.rand(2, 3, 4, 4)
    x[0, 1, 2, 2] = -0.01
    with pytest.raises(InputError, match=r"min -0\.01"):
        check_images(x)
    normalised = (torch.rand(2, 3, 4, 4) - 0.5) * 1.8  # in (-0.9, 0.9): mean-subtracted input
    with pytest.raises(InputError, match="normalised"):
        check_images(normalised)


def test_error_messages_use_the_given_name():
    with pytest.raises(InputError, match="^adversarial"):
        check_images(torch.rand(3, 4, 4), name="adversarial")


def test_check_labels():
    y = torch.tensor([0, 9, 3])
    assert check_labels(y, 3, 10) is y
    with pytest.raises(InputError, match="length 3"):
        check_labels(torch.tensor([0, 1]), 3)
    with pytest.raises(InputError, match="1-D"):
        check_labels([0, 1, 2], 3)
    with pytest.raises(InputError, match="integer"):
        check_labels(torch.tensor([0.0, 1.0, 2.0]), 3)
    with pytest.raises(InputError, match=r"\[0, 9\]"):
        check_labels(torch.tensor([0, 10, 2]), 3, 10)
    with pytest.raises(InputError, match=r"\[0, 9\]"):
        check_labels(torch.tensor([0, -1, 2]), 3, 10)


# ------------------------------------------------------------------------- core entry points refuse bad values


def test_classifier_computes_float64_in_its_own_dtype_and_refuses_8_bit_input():
    model = irad.load_classifier("resnet20")
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(model(x.double()), model(x))  # the same logits, not a dtype error
    with pytest.raises(InputError, match="255"):
        model((x * 255).to(torch.uint8))  # 8-bit values would be read as far outside [0, 1]


@pytest.mark.parametrize("name, params, match", [("nearest-si", {"d": float("nan")}, "finite"),
                                                  ("bilinear-si", {"d": float("inf")}, "finite"),
                                                  ("bilinear-sv", {"gamma": float("nan")}, "finite"),
                                                  ("nearest-sv", {"gamma": -1.0}, ">= 0")])
def test_naive_shifts_must_be_finite(name, params, match):
    with pytest.raises(InputError, match=match):
        irad.load_defense(name, **params)


def test_bad_device_and_non_string_names_are_clear_errors():
    from irad.errors import UnknownNameError
    from irad.utils import resolve_device

    with pytest.raises(InputError, match="cuda:N"):
        resolve_device("gpu")
    with pytest.raises(UnknownNameError, match="string"):
        irad.load_defense(None)  # not the 'none' defense
    from irad.sampling import SAMPLERS

    with pytest.raises(UnknownNameError, match="damaged"):
        SAMPLERS.make({"args": {"d": 1.0}})


def test_resample_names_are_case_insensitive_and_still_load_the_weights():
    upper = irad.load_defense("resample", reconstruction="Implicit", sampler="SI", d=1.0)
    lower = irad.load_defense("resample", reconstruction="implicit", sampler="si", d=1.0)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(upper(x), lower(x))  # trained weights in both, not a random network in one
    assert upper.meta["sha256"] == lower.meta["sha256"]


def test_inside_an_attack_the_value_checks_are_skipped_but_not_at_its_boundaries():
    """An attack checks its images once when called and its adversarial examples when done; the forward passes of
    its iterations skip the value checks (each would wait for the device), never the shape checks."""
    from torch import nn

    from irad.attacks import build_attack
    from irad.utils.validation import inputs_checked, values_unchecked

    with inputs_checked():
        bad = torch.full((1, 3, 4, 4), float("nan"))
        assert check_images(bad) is bad  # values not looked at here
        with pytest.raises(InputError, match="4 dimensions"):
            check_images(torch.rand(3, 4))  # shapes still are
    with pytest.raises(InputError, match="NaN"):
        check_images(torch.full((1, 3, 4, 4), float("nan")))  # and outside the block, values again

    seen: list[bool] = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3 * 4 * 4, 10)

        def forward(self, x):
            seen.append(values_unchecked())
            return self.linear(x.flatten(1))

    attack = build_attack("pgd", Recorder(), eps=8 / 255, steps=3)
    with pytest.raises(InputError, match="NaN"):
        attack(torch.full((2, 3, 4, 4), float("nan")), torch.tensor([0, 1]))  # the attack's boundary checks
    assert seen == []
    attack(torch.rand(2, 3, 4, 4), torch.tensor([0, 1]))
    assert len(seen) >= 4 and all(seen)  # the probe and every PGD iteration ran inside the block
    assert not values_unchecked()
