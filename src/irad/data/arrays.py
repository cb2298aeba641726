"""Images in memory: uint8 N x H x W x 3 arrays with integer labels, checked, and read from .npz files."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .images import from_uint8


def check_image_array(images: np.ndarray, source: str) -> None:
    """Refuse anything but uint8 N x H x W x 3."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DataError(f"{source}: 'images' must be uint8 N x H x W x 3, got {images.dtype} {images.shape}")


def check_label_array(labels: np.ndarray, n: int, source: str) -> np.ndarray:
    """``labels`` as int64, after checking that they are ``n`` integer class indices >= 0 (one per image)."""
    if labels.shape != (n,):
        raise DataError(f"{source}: 'labels' must be a 1-D array with one class index per image ({n} images), got "
                        f"shape {labels.shape}; save them as labels.reshape(-1) if each row holds one label")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: 'labels' must be integer class indices, got dtype {labels.dtype}; save them "
                        f"with an integer dtype (e.g. np.int64)")
    labels = labels.astype(np.int64)
    if n and int(labels.min()) < 0:
        raise DataError(f"{source}: 'labels' must be class indices >= 0, found {int(labels.min())}")
    return labels


class ImageDataset(Dataset):
    """Images held as uint8 N x H x W x 3 in memory; items are (float 3 x H x W in [0, 1], int label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, name: str, source: str) -> None:
        check_image_array(images, source)
        self.images, self.labels = images, check_label_array(labels, images.shape[0], source)
        self.name, self.source = name, source

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = from_uint8(self.images[i])
        return x, int(self.labels[i])

    def tensors(self, n: int | None = None, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The images ``start .. start+n`` as one float batch N x 3 x H x W and their labels."""
        stop = len(self) if n is None else min(len(self), start + n)
        x = from_uint8(self.images[start:stop])
        return x.contiguous(), torch.from_numpy(self.labels[start:stop])

    def subset(self, indices: Sequence[int] | slice) -> "ImageDataset":
        return ImageDataset(self.images[indices], self.labels[indices], self.name, self.source)


def _npz_arrays(path: Path, need_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The 'images' and 'labels' arrays of an .npz file (labels None when absent and not needed)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if "images" not in f or (need_labels and "labels" not in f):
                needs = "arrays 'images' and 'labels'" if need_labels else "an array 'images'"
                raise DataError(f"{path}: an .npz dataset needs {needs}, found {list(f)}")
            return f["images"], (f["labels"] if "labels" in f else None)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}); re-create or re-download it") from exc


def read_npz(path: Path, name: str) -> ImageDataset:
    """An .npz file with 'images' (uint8 N x H x W x 3) and 'labels' (N integers) as a dataset."""
    images, labels = _npz_arrays(path, need_labels=True)
    return ImageDataset(images, labels, name, str(path))


def read_npz_images(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The checked 'images' of an .npz file and its 'labels' (int64), or None when the file has none."""
    images, labels = _npz_arrays(path, need_labels=False)
    check_image_array(images, str(path))
    return images, None if labels is None else check_label_array(labels, images.shape[0], str(path))


def _natural_key(path: Path) -> list:
    """Sort key that puts ``train_2.npz`` before ``train_10.npz``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def read_shards(paths: list[Path], name: str) -> ImageDataset:
    """One dataset from all the .npz shards ``paths``, concatenated in natural order of their names."""
    parts = [read_npz(p, name) for p in sorted(paths, key=_natural_key)]
    if len(parts) == 1:
        return parts[0]
    sizes = sorted({tuple(p.images.shape[1:3]) for p in parts})
    if len(sizes) > 1:
        raise DataError(f"the shards {[p.source for p in parts]} hold images of different sizes {sizes}; "
                        f"remove the shards that do not belong together")
    source = f"{parts[0].source} .. {parts[-1].source} ({len(parts)} shards)"
    return ImageDataset(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]),
                        name, source)
