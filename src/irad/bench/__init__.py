"""Benchmarks: timing helpers, irad against the reference IRAD (purification and training steps)."""
