"""irad's IRAD and DISCO against the reference (:mod:`irad.reference`): an agreement check, then speed side by
side (``irad bench --reference``, ``benchmarks/bench_irad.py``)."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..reference import load_pair, make_random_weights
from .timing import device_name, time_batch, time_side_by_side

#: agreement required between the reference and irad in float32 (float64: 1e-5 is easily met)
FP32_TOLERANCE = 1e-4


class _Autocast(nn.Module):
    """Run a module under bf16 autocast (the timing wrapper for the 'bf16' rows)."""

    def __init__(self, module: nn.Module, device_type: str) -> None:
        super().__init__()
        self.module, self.device_type = module, device_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.module(x)


def _wrap(module: nn.Module, precision: str, device: torch.device) -> nn.Module:
    return _Autocast(module, device.type) if precision == "bf16" else module


_OOM = {"ms_per_image": None, "images_per_s": None, "peak_mib": None, "oom": True}


def _time(module: nn.Module, x: torch.Tensor, device: torch.device, repeats: int) -> dict[str, Any]:
    try:
        return time_batch(module, x, device, repeats)
    except torch.cuda.OutOfMemoryError:
        pass  # freed below, once the exception (whose traceback holds the failed call's tensors) is gone
    torch.cuda.empty_cache()
    return dict(_OOM)


def _time_pair(ours: nn.Module, ref: nn.Module, x: torch.Tensor, device: torch.device, repeats: int
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """irad and the reference timed with interleaved calls (fair ratios on a shared machine); on a GPU
    out-of-memory, each alone (the one that fits still gets a figure)."""
    try:
        r = time_side_by_side({"irad": ours, "reference": ref}, x, device, repeats)
        return r["irad"], r["reference"]
    except torch.cuda.OutOfMemoryError:
        pass  # freed below, outside the handler
    torch.cuda.empty_cache()
    return _time(ours, x, device, repeats), _time(ref, x, device, repeats)


@contextlib.contextmanager
def strict_fp32():
    """Full fp32 for matmuls and cuDNN convolutions (no TF32) inside the block; the settings are restored after.

    PyTorch's default lets cuDNN convolutions use TF32 on recent GPUs: irad computes the first MLP layer as a
    convolution, the reference as a matmul, so under the default their fp32 results differ by TF32 rounding."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def parse_list(text: str | None, cast=int) -> list:
    return [cast(t) for t in (text or "").split(",") if t.strip()]


# --------------------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------------------

def check_agreement(pair: dict[str, nn.Module], image_size: int, device: torch.device, batch: int = 4,
                    seed: int = 0, bf16: bool = False) -> dict[str, Any]:
    """Max |reference - irad| for IRAD and DISCO on random images in strict fp32 (no TF32); with ``bf16``, also
    how far each deviates from the fp32 reference under bf16 autocast (information only: no tolerance). On CUDA
    with TF32 convolutions allowed (PyTorch's default) the difference under those settings is reported too."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, image_size, image_size, generator=gen).to(device)
    tf32 = device.type == "cuda" and (torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)
    with torch.inference_mode():
        if tf32:
            default_diff = float((pair["irad"](x) - pair["ref_irad"](x)).abs().max())
        with strict_fp32():
            ref = pair["ref_irad"](x)
            ref_recon = pair["ref_recon"](x)
            out, out_disco = pair["irad"](x), pair["disco"](x)
            # SampleNet's shift on its own (a small error in it moves the output by less than the tolerance),
            # also without TF32: irad's first layer is a convolution, the reference's a matmul
            shift_ref = pair["ref_irad"].shift(x)
            shift_irad = pair["irad"].sampler.shift(pair["irad"].reconstruction.encoder(x))
        result = {
            "batch": batch,
            "image_size": image_size,
            "irad_max_abs_diff": float((out - ref).abs().max()),
            "disco_max_abs_diff": float((out_disco - ref_recon).abs().max()),
            "mean_abs_shift_px": float(shift_ref.abs().mean()),
            "shift_max_abs_diff_px": float((shift_irad - shift_ref).abs().max()),
            "tolerance": FP32_TOLERANCE,
        }
        if tf32:
            result["irad_max_abs_diff_tf32_default"] = default_diff
        if bf16:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                result["bf16_irad_vs_fp32_ref"] = float((pair["irad"](x) - ref).abs().max())
                result["bf16_ref_vs_fp32_ref"] = float((pair["ref_irad"](x) - ref).abs().max())
    result["ok"] = max(result["irad_max_abs_diff"], result["disco_max_abs_diff"],
                       result["shift_max_abs_diff_px"]) <= FP32_TOLERANCE
    return result


def run_benchmark(weights: str | Path | None = None, device: str | torch.device = "auto",
                  batch_sizes: Sequence[int] | None = None, image_size: int = 32,
                  precisions: Sequence[str] | None = None, repeats: int = 3,
                  image_sizes: Sequence[int] | None = None, size_batch: int = 8, seed: int = 0,
                  n_resblocks: int = 16, n_feats: int = 64, hidden: Sequence[int] = (256, 256, 256, 256),
                  samplenet_std: float = 0.5, max_queries: int | None = None, check_batch: int = 4,
                  strict: bool = False, training: bool = False, train_batch: int | None = None,
                  train_queries: int | None = None, log=print) -> dict[str, Any]:
    """Check reference == irad, then time both side by side; returns everything as a JSON-able dict.

    ``strict``: time fp32 without TF32 (else with PyTorch's settings, by default TF32 for cuDNN convolutions).
    ``training``: also time one training step of each stage (:mod:`irad.bench.training`), batch ``train_batch``
    (default 16 on CPU, 128 on CUDA) with ``train_queries`` pixels queried per image (default all)."""
    with strict_fp32() if strict else contextlib.nullcontext():
        return _run_benchmark(weights, device, batch_sizes, image_size, precisions, repeats, image_sizes,
                              size_batch, seed, n_resblocks, n_feats, hidden, samplenet_std, max_queries,
                              check_batch, (training, train_batch, train_queries), log)


def _run_benchmark(weights, device, batch_sizes, image_size, precisions, repeats, image_sizes, size_batch, seed,
                   n_resblocks, n_feats, hidden, samplenet_std, max_queries, check_batch, training,
                   log) -> dict[str, Any]:
    from ..utils import resolve_device, seed_everything

    seed_everything(seed)
    dev = resolve_device(device)
    on_cuda = dev.type == "cuda"
    # the batch sizes the fast-purification issue asks for (1000 on GPUs only)
    batch_sizes = list(batch_sizes or ([1, 64, 200, 1000] if on_cuda else [1, 64, 200]))
    precisions = list(precisions or (["fp32", "bf16"] if on_cuda else ["fp32"]))
    with contextlib.ExitStack() as stack:
        if weights is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="irad-bench-")))
            weights = make_random_weights(tmp / "irad_random.safetensors", n_resblocks, n_feats, hidden,
                                          samplenet_std, seed)
            arch = {"weights": "random", "n_resblocks": n_resblocks, "n_feats": n_feats, "hidden": list(hidden),
                    "samplenet_last_layer_std": samplenet_std}
        else:
            arch = {"weights": str(weights)}
        pair = load_pair(weights, dev, max_queries)
    arch.update(pair["irad"].reconstruction.config)
    info = {"device": str(dev), "device_name": device_name(dev), "torch": torch.__version__,
            "image_size": image_size, "repeats": repeats, "seed": seed, "model": arch,
            "tf32": {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}}
    log(f"device: {info['device_name']} [{dev}]  torch {torch.__version__}")
    log(f"model: {arch}")
    check = check_agreement(pair, image_size, dev, check_batch, seed, bf16="bf16" in precisions)
    log(f"agreement (fp32, {check_batch}x3x{image_size}x{image_size}): max |irad - reference| = "
        f"{check['irad_max_abs_diff']:.3g} (IRAD), {check['disco_max_abs_diff']:.3g} (DISCO vs reference "
        f"reconstruction); tolerance {FP32_TOLERANCE:g} -> {'OK' if check['ok'] else 'MISMATCH'}; "
        f"mean |SampleNet shift| = {check['mean_abs_shift_px']:.3f} px, max |irad - reference| of the shift = "
        f"{check['shift_max_abs_diff_px']:.3g} px")
    if "irad_max_abs_diff_tf32_default" in check:
        log(f"with PyTorch's default TF32 settings (used for the fp32 timings unless --strict-fp32): max |irad - "
            f"reference| = {check['irad_max_abs_diff_tf32_default']:.3g} (IRAD)")
    if "bf16" in precisions:
        log(f"bf16 autocast vs fp32 reference: irad {check['bf16_irad_vs_fp32_ref']:.3g}, "
            f"reference {check['bf16_ref_vs_fp32_ref']:.3g}")

    rows = []
    gen = torch.Generator().manual_seed(seed + 1)
    pipelines = (("IRAD", "irad", "ref_irad"), ("DISCO / reconstruction", "disco", "ref_recon"))
    for precision in precisions:
        for bs in batch_sizes:
            x = torch.rand(bs, 3, image_size, image_size, generator=gen).to(dev)
            for label, ours, ref in pipelines:
                # irad warms up first: on CPU the peak is the process's peak RSS so far, which only grows
                a, b = _time_pair(_wrap(pair[ours], precision, dev), _wrap(pair[ref], precision, dev), x, dev,
                                  repeats)
                speedup = None if a.get("oom") or b.get("oom") else b["ms_per_image"] / a["ms_per_image"]
                rows.append({"precision": precision, "batch": bs, "pipeline": label, "irad": a, "reference": b,
                             "speedup": speedup})
                log(f"  {precision} batch {bs} {label}: irad {_fmt(a['ms_per_image'], 3)} ms/img, reference "
                    f"{_fmt(b['ms_per_image'], 3)} ms/img" + (f", {speedup:.3f}x" if speedup else ""))  # as it goes
            del x
            if on_cuda:
                torch.cuda.empty_cache()

    size_rows = []
    for precision in (precisions if image_sizes else []):
        base = None
        for s in image_sizes:
            x = torch.rand(size_batch, 3, s, s, generator=gen).to(dev)
            r = _time(_wrap(pair["irad"], precision, dev), x, dev, repeats)
            ms = r["ms_per_image"]
            base = base or ms
            size_rows.append({"precision": precision, "image_size": s, "batch": size_batch, **r,
                              "us_per_pixel": None if ms is None else ms * 1000 / (s * s),
                              "relative_cost": None if ms is None or base is None else ms / base,
                              "relative_pixels": (s * s) / (image_sizes[0] ** 2)})
            del x

    train_rows = []
    if training[0]:
        from .training import run_training_benchmark

        train_rows = run_training_benchmark(pair, dev, training[1] or (128 if on_cuda else 16), image_size,
                                            training[2], repeats, seed, log)
    return {"info": info, "check": check, "rows": rows, "image_size_rows": size_rows, "training_rows": train_rows}


def _fmt(v: float | None, digits: int) -> str:
    return "OOM" if v is None else f"{v:.{digits}f}"


def format_markdown(result: dict[str, Any]) -> str:
    info = result["info"]
    cpu = not info["device"].startswith("cuda")
    mem = "peak RSS MiB" if cpu else "peak MiB"
    lines = [f"### irad vs reference IRAD — {info['device_name']}, 3x{info['image_size']}x{info['image_size']}, "
             f"median of {info['repeats']}",
             "",
             f"| precision | batch | pipeline | irad ms/img | ref ms/img | irad img/s | ref img/s | irad {mem} "
             f"| ref {mem} | speed-up |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        a, b = r["irad"], r["reference"]
        lines.append(f"| {r['precision']} | {r['batch']} | {r['pipeline']} | {_fmt(a['ms_per_image'], 3)} | "
                     f"{_fmt(b['ms_per_image'], 3)} | {_fmt(a['images_per_s'], 1)} | {_fmt(b['images_per_s'], 1)} "
                     f"| {_fmt(a['peak_mib'], 0)} | {_fmt(b['peak_mib'], 0)} | {_fmt(r['speedup'], 3)}{'x' if r['speedup'] else ''} |")
    if not cpu:
        tf = info.get("tf32", {})
        lines += ["", f"fp32 rows: TF32 for cuDNN convolutions {'on' if tf.get('cudnn') else 'off'}, for matmuls "
                      f"{'on' if tf.get('matmul') else 'off'}; bf16 rows: torch.autocast(bfloat16)."]
    if cpu:
        lines += ["", "Timed calls of irad and the reference alternate, in turns whose order flips (A B, B A, ...; "
                      "median of each). Peak memory on CPU is the process's peak resident set during each module's "
                      "warm-up call (Linux: the high-water mark is reset before it; elsewhere the peak so far), so "
                      "it includes the process's baseline."]
    if result["image_size_rows"]:
        lines += ["", "### irad IRAD cost against image size", "",
                  f"| precision | size | batch | ms/img | img/s | {mem} | µs/pixel | cost x | pixels x |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in result["image_size_rows"]:
            lines.append(f"| {r['precision']} | {r['image_size']} | {r['batch']} | {_fmt(r['ms_per_image'], 3)} | "
                         f"{_fmt(r['images_per_s'], 1)} | {_fmt(r['peak_mib'], 0)} | {_fmt(r['us_per_pixel'], 3)} "
                         f"| {_fmt(r['relative_cost'], 2)} | {_fmt(r['relative_pixels'], 2)} |")
    if result.get("training_rows"):
        from .training import format_training_markdown

        lines += ["", format_training_markdown(result["training_rows"], info["device_name"], info["image_size"])]
    return "\n".join(lines)
