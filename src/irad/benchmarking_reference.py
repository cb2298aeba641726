"""A plain reference implementation of IRAD, and a benchmark of irad's implementation against it.

The reference is written from the paper's equations (Eq. 9-10) in the way the authors' released code computes
them (LIIF's ``query_rgb`` style), without any of irad's optimisations:

* ``F = FEAT(I)`` with the EDSR-baseline encoder on ``(I - 0.5) / 0.5``, and the encoder is **run twice**: once
  for SampleNet, once for the decoder φ.
* Each query unfolds the 3x3 neighbourhood of every latent code (``F.unfold`` -> 9C-d, 576-d for C = 64),
  works in LIIF's normalised coordinates (pixel centres at ``-1 + (2i + 1) / H``), picks the 4 neighbouring
  codes with ``grid_sample(mode='nearest', align_corners=False)`` of ``coord ± half a pixel + 1e-6`` (clamped
  to ``±(1 - 1e-6)``), and feeds the MLP the full concatenation [unfolded feature, relative coordinate
  ``(coord - q_coord) * [H, W]``, relative cell ``cell * [H, W]``] (9C + 4 = 580-d). The 4 predictions are
  blended with area weights, each weighted by the area of the diagonally opposite rectangle.
* SampleNet is the same query with a 2-output MLP, evaluated at the pixel-centre grid with all 4 neighbours;
  its output is a shift in pixels (irad's convention), converted to normalised units (1 pixel = 2 / H) and added
  to the grid. The decoder is queried at the shifted coordinates; output ``* 0.5 + 0.5`` clamped to [0, 1].

The reference shares its weights with an irad :class:`~irad.resampling.ImageResampler` (it holds the same
parameter tensors) but none of irad's query code: only the tensors of the encoder and of the two MLPs are read.
It exists to check irad's optimised implementation independently and to measure its speed-up
(``benchmarks/bench_irad.py``, ``irad bench --reference``).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .benchmarking import time_batch, time_side_by_side
from .resampling import ImageResampler
from .utils.io import atomic_save_json

#: agreement required between the reference and irad in float32 (float64: 1e-5 is easily met)
FP32_TOLERANCE = 1e-4


# --------------------------------------------------------------------------------------------------------------
# The reference
# --------------------------------------------------------------------------------------------------------------

def _linear_layers(seq: nn.Sequential) -> list[nn.Linear]:
    """The Linear layers of an MLP built as Linear, ReLU, Linear, ReLU, ..., Linear."""
    layers = list(seq)
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    expected = [nn.Linear if i % 2 == 0 else nn.ReLU for i in range(2 * len(linears) - 1)]
    if [type(m) for m in layers] != expected:
        raise TypeError(f"expected an MLP of alternating Linear/ReLU layers, got {seq}")
    return linears


def _run_mlp(x: torch.Tensor, linears: Sequence[nn.Linear]) -> torch.Tensor:
    for i, lin in enumerate(linears):
        x = F.linear(x, lin.weight, lin.bias)
        if i < len(linears) - 1:
            x = F.relu(x)
    return x


def _run_edsr(encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """EDSR-baseline without upsampling, from the encoder's tensors: head conv, residual blocks
    (conv-ReLU-conv, scaled, plus input), a body tail conv and a global skip; input mapped to [-1, 1]."""
    x = (images - 0.5) / 0.5
    x = F.conv2d(x, encoder.head.weight, encoder.head.bias, padding=1)
    body = list(encoder.body)
    y = x
    for block in body[:-1]:
        c1, c2 = block.body[0], block.body[2]
        r = F.conv2d(F.relu(F.conv2d(y, c1.weight, c1.bias, padding=1)), c2.weight, c2.bias, padding=1)
        y = y + r * block.res_scale
    tail = body[-1]
    y = F.conv2d(y, tail.weight, tail.bias, padding=1)
    return x + y


def liif_centres(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel centres in LIIF's normalised coordinates, (row, column) order: h x w x 2."""
    ys = -1 + (2 * torch.arange(h, device=device, dtype=dtype) + 1) / h
    xs = -1 + (2 * torch.arange(w, device=device, dtype=dtype) + 1) / w
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)


def liif_query(feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor, linears: Sequence[nn.Linear],
               max_queries: int | None = None) -> torch.Tensor:
    """LIIF's query with feature unfolding, local ensemble and cell decoding, in normalised coordinates.

    feat: N x C x h x w latent codes; coord: N x Q x 2 (row, col) in [-1, 1] convention; cell: N x Q x 2
    (normalised size of a query pixel). Returns N x Q x out."""
    n, c, h, w = feat.shape
    unfolded = F.unfold(feat, 3, padding=1).view(n, c * 9, h, w)
    # coordinates stay fp32/fp64; under bf16 autocast grid_sample would promote the features to them anyway
    unfolded = unfolded.to(coord.dtype)
    centres = liif_centres(h, w, device=feat.device, dtype=coord.dtype).permute(2, 0, 1)
    centres = centres.unsqueeze(0).expand(n, 2, h, w)
    scale = torch.tensor([h, w], device=coord.device, dtype=coord.dtype)
    half = torch.tensor([1.0 / h, 1.0 / w], device=coord.device, dtype=coord.dtype)  # half a pixel
    rel_cell = cell * scale
    step = coord.shape[1] if not max_queries else max_queries
    outs = []
    for start in range(0, coord.shape[1], step):
        q = coord[:, start:start + step]
        q_cell = rel_cell[:, start:start + step]
        preds, areas = [], []
        for v_row in (-1, 1):
            for v_col in (-1, 1):
                moved = q + half * torch.tensor([v_row, v_col], device=q.device, dtype=q.dtype) + 1e-6
                moved = moved.clamp(-1 + 1e-6, 1 - 1e-6)
                sample_at = moved.flip(-1).unsqueeze(1)  # grid_sample wants (x, y) = (col, row)
                q_feat = F.grid_sample(unfolded, sample_at, mode="nearest",
                                       align_corners=False)[:, :, 0, :].permute(0, 2, 1)
                q_coord = F.grid_sample(centres, sample_at, mode="nearest",
                                        align_corners=False)[:, :, 0, :].permute(0, 2, 1)
                rel = (q - q_coord) * scale
                inp = torch.cat([q_feat, rel, q_cell], dim=-1)
                preds.append(_run_mlp(inp.reshape(-1, inp.shape[-1]), linears).view(n, q.shape[1], -1))
                areas.append((rel[..., 0] * rel[..., 1]).abs() + 1e-9)
        total = areas[0] + areas[1] + areas[2] + areas[3]
        # local ensemble: the prediction of each code is weighted by the area diagonally opposite to it
        areas = [areas[3], areas[2], areas[1], areas[0]]
        outs.append(sum(p * (a / total).unsqueeze(-1) for p, a in zip(preds, areas)))
    return torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]


class ReferenceIRAD(nn.Module):
    """Straightforward IRAD (or, with ``use_samplenet=False``, the implicit reconstruction alone = DISCO),
    sharing the weights of an irad ``ImageResampler`` built by ``load_defense('irad' | 'disco', ...)``.

    Maps [0, 1] N x 3 x H x W to [0, 1] N x 3 x H x W. ``max_queries`` splits the queries of each image batch
    into chunks (None: all at once, as the authors' code does for small images)."""

    def __init__(self, resampler: nn.Module, use_samplenet: bool = True, max_queries: int | None = None) -> None:
        super().__init__()
        recon = resampler.reconstruction
        self.encoder = recon.encoder
        decoder = recon.decoder
        if getattr(recon, "residual", False):
            raise ValueError("the reference implements the paper's LIIF; this implicit representation is residual")
        for flag in ("feat_unfold", "cell_decode", "local_ensemble"):
            if not getattr(decoder, flag, True):
                raise ValueError(f"the reference implements the paper's LIIF (all options on); {flag} is off")
        self.decoder_mlp = decoder.mlp
        self._dec = _linear_layers(decoder.mlp)
        self.use_samplenet = use_samplenet
        self.sampler_mlp = None
        self._samp: list[nn.Linear] = []
        if use_samplenet:
            net = getattr(resampler.sampler, "net", None)
            if net is None:
                raise ValueError("use_samplenet=True needs an IRAD resampler (load_defense('irad', ...))")
            self.sampler_mlp = net.mlp
            self._samp = _linear_layers(net.mlp)
        self.max_queries = max_queries

    def _prepare(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, _, h, w = images.shape
        param = self.decoder_mlp[0].weight
        work = images.to(param.dtype)
        coord_dtype = torch.float64 if work.dtype == torch.float64 else torch.float32
        grid = liif_centres(h, w, device=images.device, dtype=coord_dtype).reshape(1, h * w, 2).expand(n, -1, -1)
        cell = torch.tensor([2.0 / h, 2.0 / w], device=images.device, dtype=coord_dtype).expand(n, h * w, 2)
        return work, grid, cell

    def shift(self, images: torch.Tensor) -> torch.Tensor:
        """SampleNet's shift at every pixel, in pixels: N x H x W x 2 (row, col)."""
        n, _, h, w = images.shape
        work, grid, cell = self._prepare(images)
        feat = _run_edsr(self.encoder, work)  # encoder pass 1 (SampleNet)
        return liif_query(feat, grid, cell, self._samp, self.max_queries).reshape(n, h, w, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        work, grid, cell = self._prepare(images)
        coord = grid
        if self.use_samplenet:
            feat = _run_edsr(self.encoder, work)  # encoder pass 1 (SampleNet)
            shift_px = liif_query(feat, grid, cell, self._samp, self.max_queries)
            pixel = torch.tensor([2.0 / h, 2.0 / w], device=grid.device, dtype=grid.dtype)
            coord = grid + shift_px.to(grid.dtype) * pixel
        feat = _run_edsr(self.encoder, work)  # encoder pass 2 (decoder)
        rgb = liif_query(feat, coord, cell, self._dec, self.max_queries)
        out = (rgb * 0.5 + 0.5).clamp(0.0, 1.0)
        return out.permute(0, 2, 1).reshape(n, 3, h, w).to(images.dtype)


# --------------------------------------------------------------------------------------------------------------
# Weights and helpers
# --------------------------------------------------------------------------------------------------------------

def make_random_weights(path: str | Path, n_resblocks: int = 16, n_feats: int = 64,
                        hidden: Sequence[int] = (256, 256, 256, 256), samplenet_std: float = 0.5,
                        seed: int = 0) -> Path:
    """An IRAD weight file with random weights (PyTorch's default initialisation; SampleNet's last layer, which
    irad initialises to zero, drawn from N(0, samplenet_std) so that the shifts are non-trivial)."""
    from .reconstruction import ImplicitReconstruction
    from .sampling import SampleNet
    from .training.implicit import save_resampler_weights

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        recon = ImplicitReconstruction(n_resblocks, n_feats, tuple(hidden))
        samplenet = SampleNet(n_feats, tuple(hidden))
        for p in samplenet.net.mlp[-1].parameters():
            p.data.normal_(0.0, samplenet_std)
    path = Path(path)
    save_resampler_weights(recon, samplenet, path, {"dataset": "cifar10", "note": "random, for benchmarking"})
    return path


def load_pair(weights: str | Path, device: torch.device, max_queries: int | None = None) -> dict[str, nn.Module]:
    """irad's IRAD and DISCO from ``weights``, and the references sharing their tensors."""
    from .defenses import load_defense

    irad_module = load_defense("irad", weights=str(weights), device=device)
    disco_module = load_defense("disco", weights=str(weights), device=device)
    for module in (irad_module, disco_module):
        if not isinstance(module, ImageResampler):
            raise TypeError(f"load_defense returned a {type(module).__name__}, not an ImageResampler")
        module.validate = False  # the reference checks no input: time the same work
    return {
        "irad": irad_module,
        "disco": disco_module,
        "ref_irad": ReferenceIRAD(irad_module, use_samplenet=True, max_queries=max_queries).eval(),
        "ref_recon": ReferenceIRAD(disco_module, use_samplenet=False, max_queries=max_queries).eval(),
    }


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
    ``training``: also time one training step of each stage (``benchmarking_training``), batch ``train_batch``
    (default 16 on CPU, 128 on CUDA) with ``train_queries`` pixels queried per image (default all)."""
    with strict_fp32() if strict else contextlib.nullcontext():
        return _run_benchmark(weights, device, batch_sizes, image_size, precisions, repeats, image_sizes,
                              size_batch, seed, n_resblocks, n_feats, hidden, samplenet_std, max_queries,
                              check_batch, (training, train_batch, train_queries), log)


def _run_benchmark(weights, device, batch_sizes, image_size, precisions, repeats, image_sizes, size_batch, seed,
                   n_resblocks, n_feats, hidden, samplenet_std, max_queries, check_batch, training,
                   log) -> dict[str, Any]:
    from .utils import resolve_device, seed_everything

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
        from .benchmarking_training import run_training_benchmark

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
        from .benchmarking_training import format_training_markdown

        lines += ["", format_training_markdown(result["training_rows"], info["device_name"], info["image_size"])]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench_irad.py",
        description="Check irad's IRAD against a straightforward reference implementation (shared random weights) "
                    "and time both side by side.")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--batch-sizes", default=None,
                   help="comma-separated (default 1,64,200 on CPU, 1,64,200,1000 on CUDA)")
    p.add_argument("--image-size", type=int, default=32, help="square image side for the comparison (default 32)")
    p.add_argument("--precisions", default=None,
                   help="fp32 and/or bf16 autocast (default fp32 on CPU, fp32,bf16 on CUDA)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per measurement, median (default 3)")
    p.add_argument("--image-sizes", default=None,
                   help="also time irad's IRAD at these sizes, e.g. 32,64,128,224 (default: off)")
    p.add_argument("--size-batch", type=int, default=8, help="batch size for --image-sizes (default 8)")
    p.add_argument("--weights", default=None,
                   help="an IRAD weight file to use instead of random weights of the paper's architecture")
    p.add_argument("--n-resblocks", type=int, default=16)
    p.add_argument("--n-feats", type=int, default=64)
    p.add_argument("--hidden", default="256,256,256,256", help="MLP hidden widths (default 256,256,256,256)")
    p.add_argument("--samplenet-std", type=float, default=0.5,
                   help="std of SampleNet's random last layer; the default 0.5 gives shifts of ~0.45 px on "
                        "average, so queries cross pixel boundaries (0.01 gives ~0.01 px)")
    p.add_argument("--max-queries", type=int, default=None,
                   help="split the reference's queries in chunks of this many per image batch (default: none)")
    p.add_argument("--check-batch", type=int, default=4, help="images for the agreement check (default 4)")
    p.add_argument("--strict-fp32", action="store_true",
                   help="time fp32 with TF32 off (default: PyTorch's settings, TF32 for cuDNN convolutions); the "
                        "agreement check always runs without TF32")
    p.add_argument("--training", action="store_true",
                   help="also time one training step of the implicit representation and of SampleNet")
    p.add_argument("--train-batch", type=int, default=None, help="batch for --training (default 16 CPU, 128 CUDA)")
    p.add_argument("--train-queries", type=int, default=None,
                   help="pixels queried per image for --training (default all, as in the paper)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_path", default=None, help="also write the results as JSON here")
    return p


def run_from_args(args: argparse.Namespace, log=print) -> int:
    precisions = parse_list(args.precisions, str)
    bad = [p for p in precisions if p not in ("fp32", "bf16")]
    if bad:
        raise SystemExit(f"unknown precision(s) {bad}; use fp32 and/or bf16")
    result = run_benchmark(
        weights=args.weights, device=args.device, batch_sizes=parse_list(args.batch_sizes),
        image_size=args.image_size, precisions=precisions, repeats=args.repeats,
        image_sizes=parse_list(args.image_sizes), size_batch=args.size_batch, seed=args.seed,
        n_resblocks=args.n_resblocks, n_feats=args.n_feats, hidden=tuple(parse_list(args.hidden)),
        samplenet_std=args.samplenet_std, max_queries=args.max_queries, check_batch=args.check_batch,
        strict=args.strict_fp32, training=args.training, train_batch=args.train_batch,
        train_queries=args.train_queries, log=log)
    log("")
    log(format_markdown(result))
    if args.json_path:
        atomic_save_json(result, args.json_path)
        log(f"\nwrote {args.json_path}")
    bad_training = [r["stage"] for r in result["training_rows"] if not r["check"]["ok"]]
    if bad_training:
        log(f"\nERROR: irad's and the reference's training gradients disagree: {', '.join(bad_training)}")
        return 1
    if not result["check"]["ok"]:
        log(f"\nERROR: irad and the reference disagree by more than {FP32_TOLERANCE:g}", )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_from_args(build_parser().parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
