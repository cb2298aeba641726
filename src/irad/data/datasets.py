"""Dataset registry: CIFAR-10/100 (.npz files or torchvision folders/downloads) and ImageNet-style folders."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError, InputError
from ..registry import Registry

SPLITS = ("train", "val", "test")
DEFAULT_VAL_SIZE = 5000


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_eps: float  # the paper's L-inf budget for this dataset


_INFO = {
    "cifar10": DatasetInfo("cifar10", 10, 32, (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616), 8 / 255),
    "cifar100": DatasetInfo("cifar100", 100, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 8 / 255),
    "imagenet": DatasetInfo("imagenet", 1000, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 4 / 255),
}


def dataset_info(name: str, num_classes: int | None = None) -> DatasetInfo:
    """Facts about a known dataset; ``folder`` datasets take their class count from the folder."""
    key = name.lower()
    if key in _INFO:
        return _INFO[key]
    DATASETS.get(key)  # raises a clear error for unknown names
    return DatasetInfo(key, num_classes or 0, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 4 / 255)


class ImageDataset(Dataset):
    """Images held as uint8 N x H x W x 3 in memory; items are (float 3 x H x W in [0, 1], int label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, name: str, source: str) -> None:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise DataError(f"{source}: 'images' must be uint8 N x H x W x 3, got {images.dtype} {images.shape}")
        if labels.shape != (images.shape[0],):
            raise DataError(f"{source}: {labels.shape[0]} labels for {images.shape[0]} images")
        self.images, self.labels = images, labels.astype(np.int64)
        self.name, self.source = name, source

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div_(255.0)
        return x, int(self.labels[i])

    def tensors(self, n: int | None = None, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The images ``start .. start+n`` as one float batch N x 3 x H x W and their labels."""
        stop = len(self) if n is None else min(len(self), start + n)
        x = torch.from_numpy(self.images[start:stop]).permute(0, 3, 1, 2).float().div_(255.0)
        return x.contiguous(), torch.from_numpy(self.labels[start:stop])

    def subset(self, indices: Sequence[int] | slice) -> "ImageDataset":
        return ImageDataset(self.images[indices], self.labels[indices], self.name, self.source)


DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset")


def shipped_sample_path() -> Path:
    """The CIFAR-10 sample that ships inside the package (test images 0..999, lossless)."""
    return Path(str(resources.files("irad") / "assets" / "data" / "cifar10_test1000.npz"))


def _data_root(root: str | os.PathLike | None) -> Path | None:
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


def read_npz(path: Path, name: str) -> ImageDataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            if "images" not in f or "labels" not in f:
                raise DataError(f"{path}: an .npz dataset needs arrays 'images' and 'labels', found {list(f)}")
            return ImageDataset(f["images"], f["labels"], name, str(path))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}); re-create or re-download it") from exc


def _split_train_val(ds: ImageDataset, split: str, val_size: int) -> ImageDataset:
    """Deterministic hold-out: the last ``val_size`` training images are the validation split."""
    if not 0 < val_size < len(ds):
        raise InputError(f"val_size must be in (0, {len(ds)}), got {val_size}")
    return ds.subset(slice(0, len(ds) - val_size) if split == "train" else slice(len(ds) - val_size, len(ds)))


def _find_npz(base: Path, name: str, split: str) -> Path | None:
    file_split = "train" if split in ("train", "val") else "test"
    stems = (file_split,) if file_split == "train" else ("test", "test1000")
    for folder in (base / name, base):
        for stem in stems:
            if (folder / f"{stem}.npz").is_file():
                return folder / f"{stem}.npz"
    return None


def _load_cifar(name: str, split: str, root, download: bool, val_size: int) -> ImageDataset:
    base = _data_root(root)
    if base is None:
        if name == "cifar10" and split == "test":
            return read_npz(shipped_sample_path(), name)
        raise DataError(
            f"no data directory for {name} split {split!r}: the package ships only CIFAR-10 test images 0..999. "
            f"Pass --data DIR (or set IRAD_DATA) pointing to {name}/train.npz or a torchvision folder, "
            f"and add --download to fetch it with torchvision."
        )
    npz = _find_npz(base, name, split)
    if npz is not None:
        ds = read_npz(npz, name)
    else:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        try:
            tv = cls(str(base), train=split != "test", download=download)
        except RuntimeError as exc:
            raise DataError(
                f"no {name} data under {str(base)!r} (looked for {name}/{{train,test}}.npz and torchvision's "
                f"folder); pass --download to fetch it ({exc})"
            ) from exc
        ds = ImageDataset(np.asarray(tv.data), np.asarray(tv.targets), name, f"torchvision:{base}")
    return _split_train_val(ds, split, val_size) if split in ("train", "val") else ds


@DATASETS.register("cifar10")
def cifar10(split: str = "test", root=None, download: bool = False, val_size: int = DEFAULT_VAL_SIZE):
    """CIFAR-10 (10 classes, 32x32)."""
    return _load_cifar("cifar10", split, root, download, val_size)


@DATASETS.register("cifar100")
def cifar100(split: str = "test", root=None, download: bool = False, val_size: int = DEFAULT_VAL_SIZE):
    """CIFAR-100 (100 classes, 32x32)."""
    return _load_cifar("cifar100", split, root, download, val_size)


def _load_folder(path: Path, name: str, image_size: int, resize: int) -> Dataset:
    """ImageNet-style class folders: resize the short side to ``resize``, centre-crop ``image_size``."""
    import torchvision
    from torchvision import transforms as T

    tf = T.Compose([T.Resize(resize), T.CenterCrop(image_size), T.ToTensor()])
    try:
        return torchvision.datasets.ImageFolder(str(path), transform=tf)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"{str(path)!r} is not a folder of class sub-folders with images ({exc})") from exc


@DATASETS.register("imagenet")
def imagenet(split: str = "val", root=None, download: bool = False, image_size: int = 224, resize: int = 256, **_):
    """ImageNet-style data: ``imagenet/<split>/<class>/*.JPEG`` folders, or ``imagenet/<split>*.npz``."""
    base = _data_root(root)
    if base is None:
        raise DataError("ImageNet is not shipped: pass --data DIR (or IRAD_DATA) containing imagenet/<split>/")
    folder = base / "imagenet" if (base / "imagenet").is_dir() else base
    if (folder / split).is_dir():
        return _load_folder(folder / split, "imagenet", image_size, resize)
    npzs = sorted(folder.glob(f"{split}*.npz"))
    if npzs:
        return read_npz(npzs[0], "imagenet")
    raise DataError(f"no ImageNet split {split!r} under {str(folder)!r} (expected {split}/<class>/ or {split}*.npz)")


@DATASETS.register("folder")
def image_folder(split: str = "test", root=None, download: bool = False, image_size: int = 224, resize: int = 256):
    """A user's own class folders (``ROOT/<class>/*.png``), resized and centre-cropped to ``image_size``."""
    if root is None:
        raise DataError("the 'folder' dataset needs --data DIR pointing to ROOT/<class>/<images>")
    path = Path(root)
    if not path.is_dir():
        raise DataError(f"data directory {str(path)!r} does not exist")
    return _load_folder(path, "folder", image_size, resize)


def load_dataset(name: str = "cifar10", split: str = "test", root=None, download: bool = False, **kwargs) -> Dataset:
    """Load a registered dataset split (``train``, ``val`` = held-out tail of train, or ``test``)."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return DATASETS.build(name, split=split, root=root, download=download, **kwargs)


def first_batch(ds: Dataset, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` items of any dataset as one batch (fast path for in-memory data)."""
    if isinstance(ds, ImageDataset):
        return ds.tensors(n)
    n = len(ds) if n is None else min(n, len(ds))
    if n == 0:
        raise DataError("the dataset is empty")
    items = [ds[i] for i in range(n)]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])
