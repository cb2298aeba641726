"""Class folders of images: ImageNet-style data (folders or ``.npz`` shards) and a user's own ``folder`` dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from torch.utils.data import Dataset

from ..errors import DataError, InputError
from .arrays import ImageDataset, read_shards
from .registry import DATASETS, DEFAULT_VAL_SIZE, KNOWN
from .sources import check_classes, check_unnamed, data_root, split_train_val


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


def _imagenet_source(folder: Path, stem: str, image_size: int, resize: int) -> Dataset | None:
    """``folder/<stem>/<class>/`` images, else all ``folder/<stem>*.npz`` shards, else None."""
    if (folder / stem).is_dir():
        return _load_folder(folder / stem, "imagenet", image_size, resize)
    shards = list(folder.glob(f"{stem}*.npz"))
    return read_shards(shards, "imagenet") if shards else None


@DATASETS.register("imagenet")
def imagenet(split: str = "test", root=None, download: bool = False, image_size: int = 224, resize: int = 256,
             val_size: int = DEFAULT_VAL_SIZE):
    """ImageNet-style data: ``imagenet/<part>/<class>/*.JPEG`` folders, or ``imagenet/<part>*.npz`` shards.
    ``train``/``val`` split ``train``; ``test`` is ``test`` if present, else the official validation set ``val``."""
    if download:
        raise InputError("ImageNet cannot be downloaded by irad; drop --download and put it under --data DIR")
    base = data_root(root)
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
            check_unnamed(ds, KNOWN["imagenet"], image_size, base)
        check_classes(ds, KNOWN["imagenet"])
    if split == "test":
        return ds
    return split_train_val(ds, split, val_size, spread=not isinstance(ds, ImageDataset))


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
    return split_train_val(_folder_in_memory(path, "folder", image_size, resize), split, val_size, spread=True)
