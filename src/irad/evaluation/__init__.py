"""Robustness evaluation: defenses x victims x attacks x threat models, with caching, resume and sanity checks."""

from .config import EvalConfig, parse_spec
from .runner import evaluate, merge_results

__all__ = ["EvalConfig", "parse_spec", "evaluate", "merge_results"]
