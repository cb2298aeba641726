"""Dataset registry: CIFAR-10/100 (.npz files or torchvision folders/downloads) and ImageNet-style folders.

Splits: ``train`` and ``val`` both come from the training data, ``val`` being ``val_size`` held-out images (the last
ones of .npz or torchvision data; every k-th one of class folders, which are read in class order); ``test`` is the
test set (for ImageNet: ``test/`` or ``test*.npz`` if present, else the official validation set).
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ..errors import DataError, InputError
from ..registry import Registry

SPLITS = ("train", "val", "test")
DEFAULT_VAL_SIZE = 5000
DOWNLOADABLE = ("cifar10", "cifar100")  # what torchvision can fetch


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


def _split_train_val(ds: Dataset, split: str, val_size: int, spread: bool = False) -> Dataset:
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


def _check_classes(ds: ImageDataset, info: DatasetInfo) -> None:
    """Refuse labels outside ``[0, num_classes)`` of the dataset asked for."""
    if len(ds) and int(ds.labels.max()) >= info.num_classes:
        raise DataError(f"{ds.source}: label {int(ds.labels.max())} is out of range for {info.name} "
                        f"({info.num_classes} classes); is it another dataset? Check --dataset and --data")


def _check_unnamed(ds: ImageDataset, info: DatasetInfo, image_size: int, folder: Path) -> None:
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


def _is_unnamed(npz: Path, base: Path, name: str) -> bool:
    """Whether ``npz`` was found directly in ``base`` although ``base`` is not named after the dataset."""
    return npz.parent == base and base.name.lower() != name


def _fetch_hint(name: str, base: Path | str) -> str:
    """How to download ``name`` into ``base``: from the training commands, or from Python for any other."""
    return (f"to fetch it with torchvision add --download to the `irad train` command, or run python -c "
            f"\"from irad.data.datasets import download_dataset; download_dataset('{name}', '{base}')\"")


def _own_folders_hint(base: Path) -> str:
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


def _find_npz(base: Path, name: str, split: str) -> Path | None:
    file_split = "train" if split in ("train", "val") else "test"
    stems = (file_split,) if file_split == "train" else ("test", "test1000")
    for folder in (base / name, base):
        for stem in stems:
            if (folder / f"{stem}.npz").is_file():
                return folder / f"{stem}.npz"
    return None


def _torchvision_cifar(name: str, base: Path, train: bool, download: bool) -> ImageDataset:
    """CIFAR-10/100 from torchvision's folder under ``base``, downloaded there first with ``download``."""
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        tv = cls(str(base), train=train, download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise DataError(f"no {name} data under {str(base)!r} (looked for {name}/{{train,test}}.npz and "
                        f"torchvision's folder); {_fetch_hint(name, base)}{_own_folders_hint(base)} ({exc})"
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
    if _find_npz(base, key, "train") is None:
        _torchvision_cifar(key, base, train=True, download=True)  # one archive holds the train and test sets
    return base


def _load_cifar(name: str, split: str, root, download: bool, val_size: int) -> ImageDataset:
    info = _INFO[name]
    base = _data_root(root)
    if base is None:
        if name == "cifar10" and split == "test":
            return read_npz(shipped_sample_path(), name)
        raise DataError(
            f"no data directory for {name} split {split!r}: the package ships only CIFAR-10 test images 0..999. "
            f"Pass --data DIR (or set IRAD_DATA) pointing to {name}/train.npz or a torchvision folder; "
            f"{_fetch_hint(name, 'DIR')}."
        )
    npz = _find_npz(base, name, split)
    if npz is not None:
        ds = read_npz(npz, name)
        if _is_unnamed(npz, base, name):
            _check_unnamed(ds, info, info.image_size, base)
    else:
        ds = _torchvision_cifar(name, base, split != "test", download)
    _check_classes(ds, info)
    return _split_train_val(ds, split, val_size) if split in ("train", "val") else ds


@DATASETS.register("cifar10")
def cifar10(split: str = "test", root=None, download: bool = False, val_size: int = DEFAULT_VAL_SIZE):
    """CIFAR-10 (10 classes, 32x32)."""
    return _load_cifar("cifar10", split, root, download, val_size)


@DATASETS.register("cifar100")
def cifar100(split: str = "test", root=None, download: bool = False, val_size: int = DEFAULT_VAL_SIZE):
    """CIFAR-100 (100 classes, 32x32)."""
    return _load_cifar("cifar100", split, root, download, val_size)


def _image_folder(path: Path, transform: Callable) -> Dataset:
    """torchvision's ImageFolder over ``path`` with a loader that rescales 16-bit images instead of clipping them."""
    import torchvision

    from .images import rgb_image

    try:
        return torchvision.datasets.ImageFolder(str(path), transform=transform, loader=rgb_image)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"{str(path)!r} is not a folder of class sub-folders with images ({exc})") from exc


def _load_folder(path: Path, name: str, image_size: int, resize: int) -> Dataset:
    """ImageNet-style class folders: resize the short side to ``resize``, centre-crop ``image_size``."""
    from torchvision import transforms as T

    return _image_folder(path, T.Compose([T.Resize(resize), T.CenterCrop(image_size), T.ToTensor()]))


def _folder_in_memory(path: Path, name: str, image_size: int, resize: int) -> ImageDataset:
    """Class folders decoded into memory (uint8, resized and centre-cropped as by ``_load_folder``)."""
    from torchvision import transforms as T

    folder = _image_folder(path, T.Compose([T.Resize(resize), T.CenterCrop(image_size)]))
    images = np.stack([np.asarray(folder[i][0], dtype=np.uint8) for i in range(len(folder))])
    return ImageDataset(images, np.asarray(folder.targets, dtype=np.int64), name, str(path))


def _natural_key(path: Path) -> list:
    """Sort key that puts ``train_2.npz`` before ``train_10.npz``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _read_shards(paths: list[Path], name: str) -> ImageDataset:
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


def _imagenet_source(folder: Path, stem: str, image_size: int, resize: int) -> Dataset | None:
    """``folder/<stem>/<class>/`` images, else all ``folder/<stem>*.npz`` shards, else None."""
    if (folder / stem).is_dir():
        return _load_folder(folder / stem, "imagenet", image_size, resize)
    shards = list(folder.glob(f"{stem}*.npz"))
    return _read_shards(shards, "imagenet") if shards else None


@DATASETS.register("imagenet")
def imagenet(split: str = "test", root=None, download: bool = False, image_size: int = 224, resize: int = 256,
             val_size: int = DEFAULT_VAL_SIZE):
    """ImageNet-style data: ``imagenet/<part>/<class>/*.JPEG`` folders, or ``imagenet/<part>*.npz`` shards.
    ``train``/``val`` split ``train``; ``test`` is ``test`` if present, else the official validation set ``val``."""
    if download:
        raise InputError("ImageNet cannot be downloaded by irad; drop --download and put it under --data DIR")
    base = _data_root(root)
    if base is None:
        raise DataError("ImageNet is not shipped: pass --data DIR (or IRAD_DATA) containing imagenet/train/ and "
                        "imagenet/val/ (class folders or .npz shards)")
    folder = base / "imagenet" if (base / "imagenet").is_dir() else base
    stems = ("train",) if split in ("train", "val") else ("test", "val")
    ds = next((d for d in (_imagenet_source(folder, s, image_size, resize) for s in stems) if d is not None), None)
    if ds is None:
        wanted = " or ".join(f"{s}/<class>/ or {s}*.npz" for s in stems)
        raise DataError(f"no ImageNet data for split {split!r} under {str(folder)!r} (expected {wanted}; 'val' "
                        f"is held out of the training data, the official validation set serves as 'test')")
    if isinstance(ds, ImageDataset):
        if folder == base and base.name.lower() != "imagenet":
            _check_unnamed(ds, _INFO["imagenet"], image_size, base)
        _check_classes(ds, _INFO["imagenet"])
    if split == "test":
        return ds
    return _split_train_val(ds, split, val_size, spread=not isinstance(ds, ImageDataset))


#: the largest short side a ``folder`` dataset keeps as it is; larger images (photos) get ImageNet's 256 -> 224
MAX_NATIVE_SIZE = 256


def _native_size(path: Path) -> int | None:
    """The short side of the images under ``path`` if they all have one size (read from the file headers), else
    None."""
    from PIL import Image

    sizes = set()
    for file, _ in _image_folder(path, transform=None).samples:
        try:
            with Image.open(file) as img:
                sizes.add(img.size)
        except (OSError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot read the image {file} ({exc}); remove or replace it") from exc
        if len(sizes) > 1:
            return None
    return min(next(iter(sizes))) if sizes else None


@DATASETS.register("folder")
def image_folder(split: str = "test", root=None, download: bool = False, image_size: int | None = None,
                 resize: int | None = None, val_size: int = DEFAULT_VAL_SIZE):
    """A user's own class folders (``ROOT/<class>/*.png``) at their own size when all images share one with a short
    side of at most 256 (a non-square size is centre-cropped to its short side), else resized and centre-cropped to
    224 like ImageNet:
    ``test`` is the whole folder; ``train`` and ``val`` split it in memory (``val``: every k-th image).

    ``image_size`` / ``resize`` (the short side before the crop; default: ``image_size``, or 256 for a chosen 224)
    override that choice."""
    if root is None:
        raise DataError("the 'folder' dataset needs --data DIR pointing to ROOT/<class>/<images>")
    path = Path(root)
    if not path.is_dir():
        raise DataError(f"data directory {str(path)!r} does not exist")
    if image_size is None and resize is not None:
        image_size = resize  # only the resize given: crop what it leaves, never pad
    native = _native_size(path) if image_size is None else None
    if native is not None and native <= MAX_NATIVE_SIZE:  # small images of one size: kept as they are
        image_size, resize = native, native
    image_size = image_size or 224
    if resize is None:
        resize = 256 if image_size == 224 else image_size
    if split == "test":
        return _load_folder(path, "folder", image_size, resize)
    return _split_train_val(_folder_in_memory(path, "folder", image_size, resize), split, val_size, spread=True)


def load_dataset(name: str = "cifar10", split: str = "test", root=None, download: bool = False, **kwargs) -> Dataset:
    """Load a registered dataset split (``train``, ``val`` = images held out of train, or ``test``)."""
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
