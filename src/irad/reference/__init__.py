"""The straightforward IRAD of the paper's equations (LIIF's ``query_rgb`` style), the oracle irad's optimised
implementation is tested and benchmarked against."""

from .liif import ReferenceIRAD, liif_centres, liif_query, run_edsr
from .weights import load_pair, make_random_weights

__all__ = ["ReferenceIRAD", "liif_centres", "liif_query", "load_pair", "make_random_weights", "run_edsr"]
