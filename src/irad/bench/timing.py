"""Timing helpers shared by ``irad bench`` and the scripts in ``benchmarks/``; the device's name."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Callable

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
    sync = device_sync(device)
    peaks = {}

    def timed(module: torch.nn.Module) -> float:
        t0 = time.perf_counter()
        module(x)
        sync()
        return time.perf_counter() - t0

    with torch.inference_mode():
        for name, module in modules.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            else:
                _reset_peak_rss()
            module(x)
            sync()
            peaks[name] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _rss_mib()
        medians = interleaved_medians({name: (lambda m=module: timed(m)) for name, module in modules.items()},
                                      repeats)
    return {name: {"ms_per_image": t / len(x) * 1000, "images_per_s": len(x) / t, "peak_mib": peaks[name]}
            for name, t in medians.items()}


def device_sync(device: torch.device) -> Callable[[], None]:
    """A function that waits for ``device``'s queued work (CUDA), so that a timer reads finished work."""
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def interleaved_medians(calls: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median of ``repeats`` results (seconds) of each timed call, the calls interleaved in turns whose order flips
    (A B, B A, A B, ...): a noisy moment of a shared machine, or whatever one call leaves behind for the next,
    affects every call alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for turn in range(repeats):
        for name in (list(calls) if turn % 2 == 0 else list(calls)[::-1]):
            times[name].append(calls[name]())
    return {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}


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


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
