"""Small shared helpers: input validation, atomic file writes, devices and seeds."""

from .io import atomic_write, atomic_save_json, sha256_file
from .runtime import call_generator, eval_mode, resolve_device, seed_everything
from .validation import check_images, check_labels, is_real, is_whole

__all__ = [
    "atomic_write",
    "atomic_save_json",
    "sha256_file",
    "eval_mode",
    "resolve_device",
    "seed_everything",
    "check_images",
    "check_labels",
    "is_real",
    "is_whole",
]
