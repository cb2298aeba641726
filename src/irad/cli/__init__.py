"""The ``irad`` command line: ``purify``, ``evaluate``, ``train``, ``bench``, ``weights``."""

from .main import main

__all__ = ["main"]
