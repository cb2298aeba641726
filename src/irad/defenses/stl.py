"""STL: the Sparse Transformation Layer of Sun et al., "Adversarial Defense by Stratified Convolutional Sparse
Coding" (CVPR 2019), a baseline of the IRAD paper's Tables 2 and 3.

The image is stratified into a smooth low-frequency layer and a high-frequency residual. The low layer is kept; the
residual is projected onto the "quasi-natural" space of signals that a learned convolutional dictionary represents
sparsely (convolutional basis pursuit denoising), which drops small high-frequency perturbations:

    low  = argmin_l ||x - l||^2 + lowpass * ||grad l||^2                  (Tikhonov low-pass, Neumann boundary)
    z*   = argmin_z 1/2 ||(x - low) - sum_k d_k * z_k||^2 + lam ||z||_1    (FISTA, ``iterations`` unrolled steps)
    STL(x) = clamp(low + sum_k d_k * z*_k, 0, 1)

Everything is torch (FFT, conv2d, conv_transpose2d): differentiable end to end, on any device and any H x W.
The dictionary comes from ``irad train stl`` (:mod:`irad.training.stl`); the shipped one is ``stl-cifar10-cpu``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError, WeightsError
from ..utils.validation import check_images, is_whole
from ..weights import load_defense_weights, model_spec
from ..defense_base import Defense
from .registry import DEFENSES

# Fallbacks when a weight file's metadata does not name its settings (the shipped file names them).
DEFAULT_LAM = 0.1
DEFAULT_ITERATIONS = 60
DEFAULT_LOWPASS = 5.0


def check_stl_params(lam: float, iterations: int, lowpass: float) -> None:
    """Raise :class:`InputError` for a negative/non-finite ``lam`` or ``lowpass`` or fewer than 1 iteration."""
    if not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
        raise InputError(f"STL sparsity lam must be a finite number >= 0, got {lam!r}")
    if not is_whole(iterations, 1):
        raise InputError(f"STL iterations must be an integer >= 1 (FISTA steps), got {iterations!r}")
    if not isinstance(lowpass, (int, float)) or not math.isfinite(lowpass) or lowpass < 0:
        raise InputError(f"STL lowpass (Tikhonov weight) must be a finite number >= 0, got {lowpass!r}")


def check_dictionary(atoms: object) -> torch.Tensor:
    """A dictionary is a finite floating-point tensor K x C x s x s (K atoms of C channels, s x s pixels)."""
    if not isinstance(atoms, torch.Tensor) or atoms.dim() != 4 or atoms.shape[2] != atoms.shape[3]:
        shape = tuple(atoms.shape) if isinstance(atoms, torch.Tensor) else type(atoms).__name__
        raise InputError(f"an STL dictionary must be a tensor K x C x s x s (K atoms, C channels), got {shape}")
    if not atoms.is_floating_point() or not torch.isfinite(atoms).all() or 0 in atoms.shape:
        raise InputError("an STL dictionary must be non-empty, floating point and finite")
    return atoms


def tikhonov_lowpass(x: torch.Tensor, lowpass: float) -> torch.Tensor:
    """argmin_l ||x - l||^2 + lowpass ||grad l||^2 per channel, with forward differences and Neumann (mirror)
    boundaries, solved exactly with an FFT of the half-sample symmetric extension (the DCT-II diagonalises the
    Neumann Laplacian, eigenvalues 4 sin^2(pi u / 2H) + 4 sin^2(pi v / 2W)). A positive averaging filter: constants
    pass unchanged and [0, 1] images stay in [0, 1]. ``lowpass = 0`` is the identity."""
    if lowpass == 0:
        return x
    h, w = x.shape[-2:]
    ext = torch.cat([x, x.flip(-1)], dim=-1)
    ext = torch.cat([ext, ext.flip(-2)], dim=-2)  # 2H x 2W, periodic and symmetric
    real = torch.float64 if x.dtype == torch.float64 else torch.float32
    fu = torch.arange(2 * h, device=x.device, dtype=real)
    fv = torch.arange(w + 1, device=x.device, dtype=real)
    lap = 4 * torch.sin(math.pi * fu / (2 * h))[:, None] ** 2 + 4 * torch.sin(math.pi * fv / (2 * w))[None, :] ** 2
    spec = torch.fft.rfft2(ext.to(real)) / (1 + lowpass * lap)
    return torch.fft.irfft2(spec, s=(2 * h, 2 * w))[..., :h, :w].to(x.dtype)


def synthesize(codes: torch.Tensor, atoms: torch.Tensor) -> torch.Tensor:
    """sum_k d_k * z_k: codes N x K x (H+s-1) x (W+s-1) -> images N x C x H x W (true convolution, atoms may hang
    over the border)."""
    s = atoms.shape[-1]
    return F.conv_transpose2d(codes, atoms, padding=s - 1)


def analyze(images: torch.Tensor, atoms: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`synthesize`: N x C x H x W -> N x K x (H+s-1) x (W+s-1)."""
    s = atoms.shape[-1]
    return F.conv2d(images, atoms, padding=s - 1)


@torch.no_grad()
def lipschitz_constant(atoms: torch.Tensor, size: int = 48, iterations: int = 50, margin: float = 1.05) -> float:
    """||D||^2 (the Lipschitz constant of the data term's gradient) by deterministic power iteration on D D^T over
    ``size`` x ``size`` images, times a small ``margin``: the power iteration approaches the norm from below, and the
    norm for any image size is at most the supremum of the dictionary's frequency response."""
    d = atoms.detach().to("cpu", torch.float64)
    v = torch.randn(1, d.shape[1], size, size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    est = 0.0
    for _ in range(iterations):
        v = v / v.norm()
        u = synthesize(analyze(v, d), d)
        est = float((u * v).sum())
        v = u
    return est * margin


def fista(high: torch.Tensor, atoms: torch.Tensor, lam: float, iterations: int, lipschitz: float) -> torch.Tensor:
    """Convolutional basis pursuit denoising, argmin_z 1/2 ||high - D z||^2 + lam ||z||_1, by ``iterations`` unrolled
    FISTA steps (Beck & Teboulle 2009) from z = 0 with step 1 / ``lipschitz``. Returns the codes z."""
    step, thresh = 1.0 / lipschitz, lam / lipschitz
    n, _, h, w = high.shape
    k, s = atoms.shape[0], atoms.shape[-1]
    z = high.new_zeros(n, k, h + s - 1, w + s - 1)
    y, t = z, 1.0
    for _ in range(iterations):
        z_next = F.softshrink(y - step * analyze(synthesize(y, atoms) - high, atoms), thresh)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        y = z_next + ((t - 1) / t_next) * (z_next - z)
        z, t = z_next, t_next
    return z


class SparseTransformationLayer(Defense):
    """STL (Sun et al. 2019): Tikhonov low-pass + FISTA convolutional sparse coding of the high-pass residual with a
    learned dictionary ``atoms`` (K x 3 x s x s, unit-norm atoms). Deterministic; N x 3 x H x W in [0, 1], any H x W.

    ``lam``: sparsity weight (larger removes more detail; large enough gives the low-pass image); ``iterations``:
    FISTA steps (unrolled, so gradients are exact); ``lowpass``: Tikhonov weight of the stratification. A backward
    pass keeps every step's codes (about K (H+s-1)(W+s-1) floats per image and step); for large batches attack it
    through BPDA, as the IRAD paper's Table 3 does."""

    def __init__(self, atoms: torch.Tensor, lam: float = DEFAULT_LAM, iterations: int = DEFAULT_ITERATIONS,
                 lowpass: float = DEFAULT_LOWPASS) -> None:
        super().__init__()
        check_stl_params(lam, iterations, lowpass)
        atoms = check_dictionary(atoms)
        self.lam, self.iterations, self.lowpass = float(lam), int(iterations), float(lowpass)
        self.register_buffer("atoms", atoms.detach().clone().float())
        self.lipschitz = lipschitz_constant(self.atoms)

    def refresh(self) -> None:
        """Recompute the FISTA step after the atoms change (e.g. after ``load_state_dict``)."""
        self.lipschitz = lipschitz_constant(self.atoms)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.refresh()

    def extra_repr(self) -> str:
        k, c, s, _ = self.atoms.shape
        return f"atoms={k}x{c}x{s}x{s}, lam={self.lam:g}, iterations={self.iterations}, lowpass={self.lowpass:g}"

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stratification: (low-frequency layer, high-frequency residual), which sum to ``x``."""
        low = tikhonov_lowpass(x, self.lowpass)
        return low, x - low

    def codes(self, high: torch.Tensor) -> torch.Tensor:
        """Sparse codes z* of a high-frequency layer (N x K x (H+s-1) x (W+s-1))."""
        atoms = self.atoms.to(high.dtype)
        return fista(high, atoms, self.lam, self.iterations, self.lipschitz)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, channels=self.atoms.shape[1])
        low, high = self.split(x)
        return (low + synthesize(self.codes(high), self.atoms.to(x.dtype))).clamp(0, 1)


def _stl_weights(weights: str | Path | None, dataset: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict and metadata of an STL weight file (registered name, 'default'/None, or a path)."""
    return load_defense_weights("stl", weights, dataset, "learn a dictionary with `irad train stl`")


def load_stl(weights: str | Path | None = None, dataset: str = "cifar10", lam: float | None = None,
             iterations: int | None = None, lowpass: float | None = None) -> SparseTransformationLayer:
    """An STL defense from a dictionary file; unset settings come from the file's metadata (its training settings)."""
    state, meta = _stl_weights(weights, dataset)
    if set(state) != {"atoms"}:
        raise WeightsError(f"an STL weight file holds one tensor 'atoms', this one has {sorted(state)[:3]}: it is "
                           f"not an STL dictionary (train one with `irad train stl`)")
    settings = model_spec(meta, "stl", "the STL weight file") or {}
    module = SparseTransformationLayer(
        state["atoms"],
        lam=settings.get("lam", DEFAULT_LAM) if lam is None else lam,
        iterations=settings.get("iterations", DEFAULT_ITERATIONS) if iterations is None else iterations,
        lowpass=settings.get("lowpass", DEFAULT_LOWPASS) if lowpass is None else lowpass,
    )
    module.meta = meta
    return module


@DEFENSES.register("stl")
def stl(dataset: str = "cifar10", weights: str | Path | None = None, lam: float | None = None,
        iterations: int | None = None, lowpass: float | None = None) -> SparseTransformationLayer:
    """STL (Sun et al. 2019): low-pass layer + FISTA convolutional sparse coding of the high-pass residual.

    ``weights``: a dictionary file, a registered name, or None/'default' (shipped ``stl-cifar10-cpu``: 64 atoms
    3 x 7 x 7). ``lam``, ``iterations`` and ``lowpass`` default to the dictionary's training settings (shipped: 0.1,
    60, 5.0)."""
    return load_stl(weights, dataset, lam, iterations, lowpass)
