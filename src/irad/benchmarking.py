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
    """:func:`time_batch` for several modules on the same batch, with their timed calls interleaved in turns whose
    order flips (A B, B A, A B, ...), so that a noisy moment of a shared machine, or whatever one module leaves
    behind for the next, affects every module alike and their ratio stays fair. Each module is warmed up (and its
    peak memory read: on CPU the process's peak resident set during that call, see :func:`_reset_peak_rss`) before
    the next one first runs."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    peaks, times = {}, {name: [] for name in modules}
    with torch.inference_mode():
        for name, module in modules.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            else:
                _reset_peak_rss()
            module(x)
            sync()
            peaks[name] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _rss_mib()
        for turn in range(repeats):
            order = list(modules.items())
            for name, module in (order if turn % 2 == 0 else order[::-1]):
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


def _reset_peak_rss() -> None:
    """Reset the process's resident-memory high-water mark (Linux: ``/proc/self/clear_refs``); elsewhere a no-op,
    and :func:`_rss_mib` then reports the peak so far."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _rss_mib() -> float:
    """Peak resident memory of this process (CPU) since :func:`_reset_peak_rss` (Linux), else since it started, MiB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
