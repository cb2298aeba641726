"""Loading a registered dataset's split, and its first images as one batch."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ..errors import DataError, InputError
from .arrays import ImageDataset
from .registry import DATASETS, SPLITS


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
