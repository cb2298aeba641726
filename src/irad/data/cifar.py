"""CIFAR-10 and CIFAR-100: ``.npz`` files (``train.npz``, ``test.npz``) or torchvision's folders and downloads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from .arrays import ImageDataset, read_npz
from .registry import DATASETS, DEFAULT_VAL_SIZE, KNOWN
from .sources import (check_classes, check_unnamed, data_root, fetch_hint, find_npz, is_unnamed, own_folders_hint,
                      shipped_sample_path, split_train_val)

DOWNLOADABLE = ("cifar10", "cifar100")  # what torchvision can fetch


def _torchvision_cifar(name: str, base: Path, train: bool, download: bool) -> ImageDataset:
    """CIFAR-10/100 from torchvision's folder under ``base``, downloaded there first with ``download``."""
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        tv = cls(str(base), train=train, download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise DataError(f"no {name} data under {str(base)!r} (looked for {name}/{{train,test}}.npz and "
                        f"torchvision's folder); {fetch_hint(name, base)}{own_folders_hint(base)} ({exc})"
                        ) from exc
    except OSError as exc:  # the download itself failed
        raise DataError(f"downloading {name} into {str(base)!r} failed ({exc}); check the network, or put "
                        f"{name}/train.npz and {name}/test.npz there yourself") from exc
    return ImageDataset(np.asarray(tv.data), np.asarray(tv.targets), name, f"torchvision:{base}")


def download_dataset(name: str, root: str | os.PathLike | None = None) -> Path:
    """Fetch CIFAR-10/100 with torchvision into ``root`` (else $IRAD_DATA), unless .npz files for it are there;
    returns the data folder. This is what ``--download`` does before a training command reads its data."""
    key = name.lower()
    if key not in DOWNLOADABLE:
        DATASETS.get(key)  # a clear error for unknown names
        raise InputError(f"--download can fetch only {' and '.join(DOWNLOADABLE)}; put the {key} data under "
                         f"--data DIR yourself and drop --download")
    target = root if root is not None else os.environ.get("IRAD_DATA")
    if not target:
        raise InputError(f"--download needs --data DIR (or IRAD_DATA): the folder to download {key} into")
    base = Path(target).expanduser()
    base.mkdir(parents=True, exist_ok=True)
    if find_npz(base, key, "train") is None:
        _torchvision_cifar(key, base, train=True, download=True)  # one archive holds the train and test sets
    return base


def _load_cifar(name: str, split: str, root, download: bool, val_size: int) -> ImageDataset:
    info = KNOWN[name]
    base = data_root(root)
    if base is None:
        if name == "cifar10" and split == "test":
            return read_npz(shipped_sample_path(), name)
        raise DataError(
            f"no data directory for {name} split {split!r}: the package ships only CIFAR-10 test images 0..999. "
            f"Pass --data DIR (or set IRAD_DATA) pointing to {name}/train.npz or a torchvision folder; "
            f"{fetch_hint(name, 'DIR')}."
        )
    npz = find_npz(base, name, split)
    if npz is not None:
        ds = read_npz(npz, name)
        if is_unnamed(npz, base, name):
            check_unnamed(ds, info, info.image_size, base)
    else:
        ds = _torchvision_cifar(name, base, split != "test", download)
    check_classes(ds, info)
    return split_train_val(ds, split, val_size) if split in ("train", "val") else ds


@DATASETS.register("cifar10")
def cifar10(split: str = "test", root=None, download: bool = False, val_size: int = DEFAULT_VAL_SIZE):
    """CIFAR-10 (10 classes, 32x32)."""
    return _load_cifar("cifar10", split, root, download, val_size)


@DATASETS.register("cifar100")
def cifar100(split: str = "test", root=None, download: bool = False, val_size: int = DEFAULT_VAL_SIZE):
    """CIFAR-100 (100 classes, 32x32)."""
    return _load_cifar("cifar100", split, root, download, val_size)
