"""Input checks shared by every public entry point. Each error names the problem and the fix."""

from __future__ import annotations

import contextlib
import math
from contextvars import ContextVar
from typing import Iterator

import torch

from ..errors import InputError


def is_real(value: object) -> bool:
    """Whether ``value`` is a finite Python number (int or float, not a bool): what numeric settings must be."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


_CHECKED: ContextVar[bool] = ContextVar("irad_inputs_checked", default=False)


@contextlib.contextmanager
def inputs_checked() -> Iterator[None]:
    """Inside the block, :func:`check_images` keeps its shape and dtype checks but skips the value checks (finite,
    in [0, 1]), which wait for the device: the caller checked its inputs once at the public boundary. An attack runs
    its iterations in such a block (it checks its images when called and its adversarial examples when done), so
    the hundreds of forward passes through a defense do not each synchronise with the GPU."""
    token = _CHECKED.set(True)
    try:
        yield
    finally:
        _CHECKED.reset(token)


def values_unchecked() -> bool:
    """Whether the value checks of this call are skipped (inside :func:`inputs_checked`)."""
    return _CHECKED.get()


def is_whole(value: object, minimum: int | None = None) -> bool:
    """Whether ``value`` is a Python int (not a bool), at least ``minimum`` if given: what counts must be."""
    return not isinstance(value, bool) and isinstance(value, int) and (minimum is None or value >= minimum)


def check_images(x: object, name: str = "images", channels: int | None = 3, min_size: int = 1) -> torch.Tensor:
    """Validate an image batch: a floating-point tensor N x C x H x W, N >= 1, finite, values in [0, 1].

    Returns ``x`` unchanged so it can be used inline.
    """
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor of shape (N, 3, H, W), got {type(x).__name__}")
    if x.dim() == 3:
        raise InputError(
            f"{name} has shape {tuple(x.shape)}: expected a batch (N, C, H, W); add a batch dimension with "
            f"x.unsqueeze(0)"
        )
    if x.dim() != 4:
        raise InputError(f"{name} must have 4 dimensions (N, C, H, W), got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        hint = " (channels-last input? use x.permute(0, 3, 1, 2))" if x.shape[-1] == channels else ""
        raise InputError(f"{name} must have {channels} channels in dim 1, got shape {tuple(x.shape)}{hint}")
    if x.shape[0] == 0:
        raise InputError(f"{name} is an empty batch (N = 0); pass at least one image")
    if x.shape[2] < min_size or x.shape[3] < min_size:
        raise InputError(f"{name} is {x.shape[2]}x{x.shape[3]} pixels; at least {min_size}x{min_size} is needed")
    if not x.is_floating_point():
        raise InputError(
            f"{name} has dtype {x.dtype}; expected floating point in [0, 1] (for uint8 images use x.float() / 255)"
        )
    if _CHECKED.get():
        return x
    lo, hi = torch.aminmax(x.detach()) if x.numel() else (x.new_zeros(()), x.new_zeros(()))
    lo, hi = torch.stack([lo, hi]).tolist()  # one wait for the device; NaN and Inf show in the extremes
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"{name} contains NaN or Inf values; clean the input before purification/classification")
    if lo < -1e-6 or hi > 1 + 1e-6:
        if lo < 0:
            hint = " (normalised input? irad expects raw [0, 1]; normalisation lives inside the classifier)"
        elif hi > 1.5:
            hint = " (looks like 0..255: divide by 255)"
        else:
            hint = " (irad expects raw [0, 1] images)"
        raise InputError(f"{name} values must lie in [0, 1], got min {lo:.4g}, max {hi:.4g}{hint}")
    return x


def check_labels(y: object, n: int, num_classes: int | None = None, name: str = "labels") -> torch.Tensor:
    """Validate integer class labels of length ``n``."""
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != n:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise InputError(f"{name} must be a 1-D tensor of length {n}, got {shape}")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise InputError(f"{name} must be integer class indices, got dtype {y.dtype}")
    if num_classes is not None and n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise InputError(f"{name} must lie in [0, {num_classes - 1}], got range [{int(y.min())}, {int(y.max())}]")
    return y
