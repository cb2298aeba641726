"""Datasets as float tensors in [0, 1], NCHW; normalisation lives inside models, never here.

Where data comes from, in order: the ``root`` argument (CLI ``--data``), the ``IRAD_DATA`` environment variable,
then the CIFAR-10 sample shipped inside the package (test images 0..999).
"""

from .datasets import (
    DATASETS,
    DatasetInfo,
    ImageDataset,
    dataset_info,
    load_dataset,
    shipped_sample_path,
)
from .images import read_image, write_image

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "ImageDataset",
    "dataset_info",
    "load_dataset",
    "shipped_sample_path",
    "read_image",
    "write_image",
]
