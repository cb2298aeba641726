"""Reading and writing single image files (PNG, JPEG, ...) as [0, 1] tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from ..utils.io import atomic_write


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file as a float tensor 3 x H x W in [0, 1] (RGB)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{str(path)!r} is not a readable image ({exc}); pass a PNG/JPEG/BMP file") from exc
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W (or 3 x H x W) float in [0, 1] -> uint8 N x H x W x 3 (or H x W x 3), rounded."""
    arr = (x.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()
    return arr.permute(*range(arr.dim() - 3), -2, -1, -3).numpy()


def write_image(x: torch.Tensor, path: str | Path) -> None:
    """Write a 3 x H x W tensor in [0, 1] to ``path`` (format from the suffix), atomically."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"cannot tell the image format of {str(path)!r}; use a suffix such as .png")
    with atomic_write(path) as fh:
        Image.fromarray(to_uint8(x)).save(fh, format=fmt)
