"""Where a dataset's files are found: ``--data`` / ``root``, then ``$IRAD_DATA``, then the shipped CIFAR-10 sample;
the deterministic train/val hold-out; checks that a file found there belongs to the dataset asked for."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset, Subset

from ..errors import DataError, InputError
from .arrays import ImageDataset
from .registry import DatasetInfo


def shipped_sample_path() -> Path:
    """The CIFAR-10 sample that ships inside the package (test images 0..999, lossless)."""
    return Path(str(resources.files("irad") / "assets" / "data" / "cifar10_test1000.npz"))


def data_root(root: str | os.PathLike | None) -> Path | None:
    if root is not None:
        path = Path(root).expanduser()
        if not path.exists():
            raise DataError(f"data directory {str(path)!r} does not exist; check --data / the root argument")
        return path
    env = os.environ.get("IRAD_DATA")
    if env:
        path = Path(env).expanduser()
        if not path.exists():
            raise DataError(f"IRAD_DATA points to {env!r}, which does not exist; fix or unset it")
        return path
    return None


def split_train_val(ds: Dataset, split: str, val_size: int, spread: bool = False) -> Dataset:
    """Deterministic hold-out of ``val_size`` training images as the validation split: the last ones, or with
    ``spread`` (class folders, read in class order) every k-th one, so that val covers all classes."""
    n = len(ds)
    if not 0 < val_size < n:
        raise InputError(f"val_size must be in (0, {n}) for {n} training images, got {val_size}; "
                         f"pass a smaller --val-size")
    if spread:
        val = np.arange(val_size) * n // val_size  # strictly increasing, as n > val_size
        keep: slice | np.ndarray = val if split == "val" else np.setdiff1d(np.arange(n), val)
    else:
        keep = slice(0, n - val_size) if split == "train" else slice(n - val_size, n)
    if isinstance(ds, ImageDataset):
        return ds.subset(keep)
    return Subset(ds, list(range(n))[keep] if isinstance(keep, slice) else keep.tolist())


def check_classes(ds: ImageDataset, info: DatasetInfo) -> None:
    """Refuse labels outside ``[0, num_classes)`` of the dataset asked for."""
    if len(ds) and int(ds.labels.max()) >= info.num_classes:
        raise DataError(f"{ds.source}: label {int(ds.labels.max())} is out of range for {info.name} "
                        f"({info.num_classes} classes); is it another dataset? Check --dataset and --data")


def check_unnamed(ds: ImageDataset, info: DatasetInfo, image_size: int, folder: Path) -> None:
    """A file found directly in ``folder`` (not in ``folder/<name>/``) may belong to any dataset: check that its
    images are not larger than the dataset's (smaller crops are fine) and, for a large file, that its labels use
    at least half of the classes."""
    hint = f"Check --dataset and --data, or move it to {str(folder / info.name)!r} if it is {info.name} data"
    height, width = ds.images.shape[1:3]
    if max(height, width) > image_size:
        raise DataError(f"{ds.source} holds {height}x{width} images, larger than the {image_size}x{image_size} "
                        f"{info.name} images; is it another dataset? {hint}")
    used = len(np.unique(ds.labels))
    if len(ds) >= 20 * info.num_classes and 2 * used < info.num_classes:
        raise DataError(f"{ds.source}: its {len(ds)} images use only {used} of the {info.num_classes} {info.name} "
                        f"classes; is it another dataset? {hint}")


def is_unnamed(npz: Path, base: Path, name: str) -> bool:
    """Whether ``npz`` was found directly in ``base`` although ``base`` is not named after the dataset."""
    return npz.parent == base and base.name.lower() != name


def fetch_hint(name: str, base: Path | str) -> str:
    """How to download ``name`` into ``base``: from the training commands, or from Python for any other."""
    return (f"to fetch it with torchvision add --download to the `irad train` command, or run python -c "
            f"\"from irad.data import download_dataset; download_dataset('{name}', '{base}')\"")


def own_folders_hint(base: Path) -> str:
    """A pointer to ``--dataset folder`` when ``base`` looks like a user's class folders (sub-folders of images)."""
    from .images import IMAGE_SUFFIXES

    try:
        has_class_folders = any(d.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir())
                                for d in Path(base).iterdir())
    except OSError:
        return ""
    return ("; it holds class folders of images: to use your own data, add --dataset folder (images keep their size "
            "when they all share a small one, else are resized and centre-cropped to 224 x 224)"
            ) if has_class_folders else ""


def find_npz(base: Path, name: str, split: str) -> Path | None:
    file_split = "train" if split in ("train", "val") else "test"
    stems = (file_split,) if file_split == "train" else ("test", "test1000")
    for folder in (base / name, base):
        for stem in stems:
            if (folder / f"{stem}.npz").is_file():
                return folder / f"{stem}.npz"
    return None
