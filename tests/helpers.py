"""Small helpers shared by test modules (imported as ``helpers``: pytest puts tests/ on the import path)."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner


def invoke(*args: object):
    """Run the ``irad`` command line in-process with ``args`` (as strings); returns click's result."""
    from irad.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def coded_images(ids, size: int = 2) -> np.ndarray:
    """Images whose pixels spell their id: channel 0 = id % 256, channel 1 = id // 256 (so a split can be traced)."""
    ids = np.asarray(ids)
    images = np.zeros((len(ids), size, size, 3), np.uint8)
    images[..., 0] = (ids % 256)[:, None, None]
    images[..., 1] = (ids // 256)[:, None, None]
    return images
