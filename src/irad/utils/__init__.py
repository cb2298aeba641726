"""Small shared helpers: input validation, atomic file writes, devices and seeds."""

from .io import atomic_write, atomic_save_json, sha256_file
from .runtime import call_generator, resolve_device, seed_everything
from .validation import check_images, check_labels

__all__ = [
    "atomic_write",
    "atomic_save_json",
    "sha256_file",
    "resolve_device",
    "seed_everything",
    "check_images",
    "check_labels",
]
