"""Datasets as float tensors in [0, 1], NCHW; normalisation lives inside models, never here.

Where data comes from, in order: the ``root`` argument (CLI ``--data``), the ``IRAD_DATA`` environment variable,
then the CIFAR-10 sample shipped inside the package (test images 0..999).

``registry`` (names and facts), ``arrays`` (in-memory images, .npz), ``sources`` (where files are found, the
train/val hold-out), ``cifar`` and ``folders`` (the registered datasets), ``loading`` (``load_dataset``), ``images``
(single image files and uint8 <-> float).
"""

from . import cifar, folders  # noqa: F401  (registers cifar10, cifar100, imagenet, folder)
from .arrays import ImageDataset, read_npz, read_npz_images
from .cifar import download_dataset
from .images import from_uint8, read_image, to_uint8, write_image
from .loading import first_batch, load_dataset
from .registry import DATASETS, DatasetInfo, dataset_info
from .sources import shipped_sample_path

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "ImageDataset",
    "dataset_info",
    "download_dataset",
    "first_batch",
    "from_uint8",
    "load_dataset",
    "read_image",
    "read_npz",
    "read_npz_images",
    "shipped_sample_path",
    "to_uint8",
    "write_image",
]
