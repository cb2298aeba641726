"""RECONS (Eq. 2-3): turn a discrete image into a continuous representation φ that can be queried anywhere.

Coordinates are in pixel units, as in the paper: ``G[i, j] = [i, j]`` is the centre of pixel (row i, column j);
``φ(u, v)`` for real-valued (u, v). Three reconstructions ship:

* ``nearest``  (Eq. 6): colour of the nearest pixel;
* ``bilinear`` (Eq. 5): bilinear interpolation of the four neighbours;
* ``implicit`` (Eq. 9): a LIIF implicit representation (EDSR-baseline encoder + MLP decoder).
"""

from .base import RECONSTRUCTIONS, ContinuousImage, Reconstruction, pixel_grid
from .interpolation import BilinearReconstruction, NearestReconstruction
from .implicit import EDSREncoder, ImplicitReconstruction, LIIFDecoder

__all__ = [
    "RECONSTRUCTIONS",
    "ContinuousImage",
    "Reconstruction",
    "pixel_grid",
    "NearestReconstruction",
    "BilinearReconstruction",
    "ImplicitReconstruction",
    "EDSREncoder",
    "LIIFDecoder",
]
