"""The dataset registry and the facts irad knows about each dataset (classes, size, normalisation, the paper's ε).

Splits: ``train`` and ``val`` both come from the training data, ``val`` being ``val_size`` held-out images (the last
ones of .npz or torchvision data; every k-th one of class folders, which are read in class order); ``test`` is the
test set (for ImageNet: ``test/`` or ``test*.npz`` if present, else the official validation set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch.utils.data import Dataset

from ..registry import Registry

SPLITS = ("train", "val", "test")
DEFAULT_VAL_SIZE = 5000

DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_eps: float  # the paper's L-inf budget for this dataset


KNOWN = {
    "cifar10": DatasetInfo("cifar10", 10, 32, (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616), 8 / 255),
    "cifar100": DatasetInfo("cifar100", 100, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 8 / 255),
    "imagenet": DatasetInfo("imagenet", 1000, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 4 / 255),
}


def dataset_info(name: str, num_classes: int | None = None) -> DatasetInfo:
    """Facts about a known dataset; ``folder`` datasets take their class count from the folder."""
    key = name.lower()
    if key in KNOWN:
        return KNOWN[key]
    DATASETS.get(key)  # raises a clear error for unknown names
    return DatasetInfo(key, num_classes or 0, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 4 / 255)
