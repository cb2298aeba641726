"""Timing helpers shared by ``irad bench`` and the scripts in ``benchmarks/``."""

from __future__ import annotations

import time
from typing import Any

import torch


def time_batch(module: torch.nn.Module, x: torch.Tensor, device: torch.device, repeats: int = 3) -> dict[str, Any]:
    """Median ms per image of ``module(x)`` (inference mode, after one warm-up call), images/s and peak memory."""
    return time_side_by_side({"module": module}, x, device, repeats)["module"]


def time_side_by_side(modules: dict[str, torch.nn.Module], x: torch.Tensor, device: torch.device,
                      repeats: int = 3) -> dict[str, dict[str, Any]]:
    """:func:`time_batch` for several modules on the same batch, with their timed calls interleaved (A B A B ...),
    so that a noisy moment of a shared machine slows every module alike and their ratio stays fair. Each module is
    warmed up (and, on CPU, its peak memory read) before the next one first runs."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    peaks, times = {}, {name: [] for name in modules}
    with torch.inference_mode():
        for name, module in modules.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            module(x)
            sync()
            peaks[name] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _rss_mib()
        for _ in range(repeats):
            for name, module in modules.items():
                t0 = time.perf_counter()
                module(x)
                sync()
                times[name].append(time.perf_counter() - t0)
    out = {}
    for name, ts in times.items():
        t = sorted(ts)[len(ts) // 2]
        out[name] = {"ms_per_image": t / len(x) * 1000, "images_per_s": len(x) / t, "peak_mib": peaks[name]}
    return out


def time_module(module: torch.nn.Module, batch_size: int, image_size: int, device: torch.device,
                repeats: int = 3, channels: int = 3) -> dict[str, Any]:
    """:func:`time_batch` on a random batch of ``batch_size`` images of ``image_size`` pixels."""
    return time_batch(module, torch.rand(batch_size, channels, image_size, image_size, device=device), device,
                      repeats)


def _rss_mib() -> float:
    """Peak resident memory of this process (CPU), MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
