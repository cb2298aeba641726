"""Device selection and seeding conventions shared by the CLI and the API."""

from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch

from ..errors import InputError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` picks CUDA when available, else CPU; an unavailable CUDA request is a clear error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    return dev


def call_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A generator seeded with ``seed`` afresh at every call of a randomized module (so the same input and seed
    give the same output), or None (torch's global generator) when ``seed`` is None."""
    return None if seed is None else torch.Generator(device=device).manual_seed(seed)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run ``module`` in eval mode inside the block, restoring the train/eval mode of every submodule after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, mode in modes:
            m.training = mode
