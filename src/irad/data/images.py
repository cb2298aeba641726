"""Reading and writing single image files (PNG, JPEG, ...) as [0, 1] tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from ..utils.io import atomic_write

#: file name suffixes read as images (folders, ``irad purify``)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


def _is_wide(img: Image.Image) -> bool:
    """16/32-bit integer or float pixels, which ``img.convert("RGB")`` would clip to 255 instead of rescaling."""
    return img.mode in ("I", "F") or img.mode.startswith("I;16")


def _wide_pixels(img: Image.Image, source: str) -> np.ndarray:
    """A wide (one-channel) image as float32 H x W x 3 in [0, 1]: integers / 65535, floats checked to be in [0, 1]."""
    arr = np.asarray(img)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if img.mode == "F":
        if not np.isfinite(arr).all() or lo < 0.0 or hi > 1.0:
            raise InputError(f"{source}: a floating-point (mode F) image must hold values in [0, 1], found "
                             f"[{lo:g}, {hi:g}]; rescale it to [0, 1] or save it as an 8- or 16-bit image")
        scaled = arr.astype(np.float32)
    else:
        if lo < 0 or hi > 65535:
            raise InputError(f"{source}: integer (mode {img.mode}) pixels must be 16-bit values in [0, 65535], found "
                             f"[{lo:g}, {hi:g}]; save the image as an 8- or 16-bit file")
        scaled = arr.astype(np.float32) / np.float32(65535.0)
    return np.repeat(scaled[:, :, None], 3, axis=2)


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file as a float tensor 3 x H x W in [0, 1] (RGB); 16-bit files are scaled by 1/65535."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as img:
            if _is_wide(img):
                return torch.from_numpy(_wide_pixels(img, str(path))).permute(2, 0, 1).contiguous()
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{str(path)!r} is not a readable image ({exc}); pass a PNG/JPEG/BMP file") from exc
    return from_uint8(arr.copy()).contiguous()


def rgb_image(path: str | Path) -> Image.Image:
    """Open an image as an 8-bit RGB PIL image, rescaling 16-bit and float pixels instead of clipping them (the
    loader of class-folder datasets; 8-bit files are converted exactly as torchvision's own loader does)."""
    with Image.open(path) as img:
        if not _is_wide(img):
            return img.convert("RGB")
        arr = _wide_pixels(img, str(path))
    return Image.fromarray((arr * np.float32(255.0)).round().astype(np.uint8))


def from_uint8(pixels: np.ndarray | torch.Tensor, channels_last: bool = True,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 pixels as floats in [0, 1] (``dtype``): N x H x W x 3 (or H x W x 3) arrays become N x 3 x H x W (or
    3 x H x W); ``channels_last=False`` keeps a N x 3 x H x W layout. The inverse of :func:`to_uint8`."""
    t = torch.as_tensor(pixels)
    if t.dtype != torch.uint8:
        raise InputError(f"expected uint8 pixels, got {t.dtype}; pass images as uint8 0..255")
    if channels_last:
        t = t.permute(*range(t.dim() - 3), -1, -3, -2)
    return t.to(dtype).div_(255.0)


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
