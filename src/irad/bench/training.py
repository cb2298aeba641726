"""Training throughput of irad against the straightforward reference (issue: fast purification, part 3).

One optimisation step (forward, backward, Adam) of

* the implicit representation (§4.2): L1 between the colours queried at ``queries`` random pixel centres of each
  image and the target's colours there (the paper queries all pixels);
* SampleNet (§4.3, A.1): cross-entropy of a classifier on the image resampled at U = G + SampleNet(F, G), with the
  encoder and decoder frozen.

irad's side is what ``irad train implicit`` / ``irad train samplenet`` run (``ImplicitReconstruction.query`` and
``ImageResampler``, the defense's forward); the reference side is :mod:`irad.reference` (unfolded 576-d features
per neighbour; for SampleNet the encoder runs twice). Both share the same tensors; before timing, one step's loss
and gradients are compared.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..reference import liif_centres, liif_query, run_edsr
from .timing import device_sync, interleaved_medians

#: relative tolerance of the loss / gradient agreement check, which runs in float64 (in fp32 the gradients, sums
#: of thousands of terms that partly cancel, differ by up to ~1e-2 relative between any two orders of summation)
GRAD_RTOL = 1e-6


def _pixel_queries(n: int, h: int, w: int, queries: int, gen: torch.Generator, device) -> torch.Tensor:
    """``queries`` distinct random pixel indices per image (N x q, flat row-major)."""
    return torch.stack([torch.randperm(h * w, generator=gen)[:queries] for _ in range(n)]).to(device)


def implicit_losses(pair: dict[str, nn.Module], images: torch.Tensor, targets: torch.Tensor, queries: int,
                    gen: torch.Generator) -> dict[str, Callable[[], torch.Tensor]]:
    """L1 loss closures for irad's and the reference's implicit representation (same weights, same queries)."""
    recon = pair["irad"].reconstruction
    n, _, h, w = images.shape
    idx = _pixel_queries(n, h, w, queries, gen, images.device)
    rows, cols = torch.div(idx, w, rounding_mode="floor"), idx % w
    coords_px = torch.stack((rows, cols), dim=-1).to(images.dtype).unsqueeze(2)  # N x q x 1 x 2, pixel units
    target_rgb = targets.flatten(2).gather(2, idx.unsqueeze(1).expand(n, 3, queries))  # N x 3 x q
    # in the images' dtype: on the last row / column LIIF's ensemble weights tie, and a centre rounded elsewhere
    # (e.g. (2k + 1) / 7 computed in float32) is off by ~1e-8, enough to move those weights (areas of ~1e-9)
    coords_liif = liif_centres(h, w, device=images.device, dtype=images.dtype).reshape(h * w, 2)[idx]
    cell = images.new_tensor([2.0 / h, 2.0 / w]).expand(n, queries, 2)
    linears = [m for m in recon.decoder.mlp if isinstance(m, nn.Linear)]

    def ours() -> torch.Tensor:
        return F.l1_loss(recon(images).query(coords_px)[..., 0], target_rgb)

    def reference() -> torch.Tensor:
        rgb = liif_query(run_edsr(recon.encoder, images), coords_liif, cell, linears) * 0.5 + 0.5
        return F.l1_loss(rgb.permute(0, 2, 1), target_rgb)

    return {"ours": ours, "reference": reference}


def samplenet_losses(pair: dict[str, nn.Module], images: torch.Tensor, labels: torch.Tensor,
                     classifier: nn.Module) -> dict[str, Callable[[], torch.Tensor]]:
    """Cross-entropy closures for irad's and the reference's SampleNet stage (encoder and decoder frozen)."""
    def ours() -> torch.Tensor:  # the defense's own forward, which ``irad train samplenet`` trains through
        return F.cross_entropy(classifier(pair["irad"](images)), labels)

    def reference() -> torch.Tensor:
        return F.cross_entropy(classifier(pair["ref_irad"](images)), labels)

    return {"ours": ours, "reference": reference}


def _grads(loss_fn: Callable[[], torch.Tensor], params: list[nn.Parameter]) -> tuple[float, list[torch.Tensor]]:
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return float(loss.detach()), [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def check_gradients(losses: dict[str, Callable[[], torch.Tensor]], params: list[nn.Parameter]) -> dict[str, Any]:
    """Loss and gradients of both sides at the same weights: relative differences (max over tensors)."""
    loss_a, grads_a = _grads(losses["ours"], params)
    loss_b, grads_b = _grads(losses["reference"], params)
    grad_rel = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-12)) for a, b in zip(grads_a, grads_b))
    loss_rel = abs(loss_a - loss_b) / max(abs(loss_b), 1e-12)
    return {"loss_ours": loss_a, "loss_reference": loss_b, "loss_rel_diff": loss_rel, "grad_rel_diff": grad_rel,
            "ok": loss_rel <= GRAD_RTOL and grad_rel <= GRAD_RTOL}


def time_steps(losses: dict[str, Callable[[], torch.Tensor]], params: list[nn.Parameter], batch: int,
               device: torch.device, repeats: int, lr: float) -> dict[str, dict[str, Any]]:
    """Median images/s of a full step (zero_grad, forward, backward, Adam with the paper's betas) for each loss,
    after one warm-up step each, with the timed steps interleaved in turns whose order flips (A B, B A, ...) as in
    :func:`irad.bench.timing.time_side_by_side`, so that a noisy moment of a shared machine hits both sides alike.

    Each side has its own Adam (its state is part of its cost); both train the same ``params``, which only changes
    their values between steps, not the work a step does."""
    opts = {name: torch.optim.Adam(params, lr=lr, betas=(0.0, 0.9)) for name in losses}
    sync = device_sync(device)

    def step(name: str) -> float:
        t0 = time.perf_counter()
        opts[name].zero_grad(set_to_none=True)
        losses[name]().backward()
        opts[name].step()
        sync()
        return time.perf_counter() - t0

    for name in losses:  # the first step warms up allocators and kernels
        step(name)
    medians = interleaved_medians({name: (lambda n=name: step(n)) for name in losses}, repeats)
    return {name: {"images_per_s": batch / t, "ms_per_step": t * 1000} for name, t in medians.items()}


def _stages(pair: dict[str, nn.Module], images: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor,
            classifier: nn.Module, queries: int, seed: int) -> list[tuple]:
    recon, samplenet = pair["irad"].reconstruction, pair["irad"].sampler
    gen = torch.Generator().manual_seed(seed + 3)  # the same query pixels for every copy of the pair
    return [("implicit representation (L1)", implicit_losses(pair, images, targets, queries, gen),
             list(recon.parameters()), 1e-4, f"{queries} queries/image"),
            ("SampleNet (CE, ResNet-20)", samplenet_losses(pair, images, labels, classifier),
             list(samplenet.net.parameters()), 2e-4, "encoder+decoder frozen")]


def _only_trainable(pair: dict[str, nn.Module], params: list[nn.Parameter]) -> None:
    for p in list(pair["irad"].parameters()) + list(pair["disco"].parameters()):
        p.requires_grad_(any(p is q for q in params))


def run_training_benchmark(pair: dict[str, nn.Module], device: torch.device, batch: int, image_size: int,
                           queries: int | None, repeats: int, seed: int, log=print) -> list[dict[str, Any]]:
    """Both training stages, irad against the reference: agreement check, then images/s side by side."""
    from ..classifiers import build_classifier

    gen = torch.Generator().manual_seed(seed + 2)  # images, targets, labels
    images = torch.rand(batch, 3, image_size, image_size, generator=gen).to(device)
    targets = (images + 0.03 * torch.randn(images.shape, generator=gen).to(device)).clamp(0, 1)
    labels = torch.randint(0, 10, (batch,), generator=gen).to(device)
    queries = min(queries or image_size * image_size, image_size * image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = build_classifier("resnet20").to(device).eval().requires_grad_(False)
    # agreement in float64, on a copy (deepcopy keeps the reference's tensors shared with irad's)
    pair64 = {k: m.to(torch.float64) for k, m in copy.deepcopy(pair).items()}
    checks = []
    for _, losses, params, _, _ in _stages(pair64, images.double(), targets.double(), labels,
                                           copy.deepcopy(classifier).double(), queries, seed):
        _only_trainable(pair64, params)
        checks.append(check_gradients(losses, params))
    del pair64
    rows = []
    saved = {p: p.requires_grad for p in list(pair["irad"].parameters()) + list(pair["disco"].parameters())}
    try:
        for (label, losses, params, lr, note), check in zip(_stages(pair, images, targets, labels, classifier,
                                                                    queries, seed), checks):
            _only_trainable(pair, params)
            log(f"training agreement, {label}: loss rel diff {check['loss_rel_diff']:.2g}, max grad rel diff "
                f"{check['grad_rel_diff']:.2g} (tolerance {GRAD_RTOL:g}) -> {'OK' if check['ok'] else 'MISMATCH'}")
            timed = time_steps(losses, params, batch, device, repeats, lr)
            a, b = timed["ours"], timed["reference"]
            rows.append({"stage": label, "note": note, "batch": batch, "check": check, "irad": a, "reference": b,
                         "speedup": a["images_per_s"] / b["images_per_s"]})
    finally:
        for p, flag in saved.items():
            p.requires_grad_(flag)
    return rows


def format_training_markdown(rows: list[dict[str, Any]], device_name: str, image_size: int) -> str:
    lines = [f"### Training throughput, irad vs reference — {device_name}, 3x{image_size}x{image_size}", "",
             "| stage | batch | setting | irad img/s | ref img/s | speed-up | loss / grad agreement |",
             "|---|---:|---|---:|---:|---:|---|"]
    for r in rows:
        c = r["check"]
        lines.append(f"| {r['stage']} | {r['batch']} | {r['note']} | {r['irad']['images_per_s']:.1f} | "
                     f"{r['reference']['images_per_s']:.1f} | {r['speedup']:.2f}x | "
                     f"{c['loss_rel_diff']:.1g} / {c['grad_rel_diff']:.1g} {'OK' if c['ok'] else 'MISMATCH'} |")
    return "\n".join(lines)
