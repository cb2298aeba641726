"""Classic input-transformation baselines of Table 2: bit reduction, JPEG, randomization, median filter."""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..data.images import from_uint8
from ..errors import InputError
from ..utils.runtime import call_generator
from ..utils.validation import check_images, is_real, is_whole
from ..defense_base import Defense
from .registry import DEFENSES


class BitReduction(Defense):
    """Feature squeezing by colour-depth reduction (Xu et al. 2018): x -> round(x (2^b - 1)) / (2^b - 1)."""

    def __init__(self, bits: int = 4) -> None:
        super().__init__()
        if not 1 <= bits <= 16:
            raise InputError(f"bits must be in 1..16, got {bits}")
        self.levels = 2**bits - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        return torch.round(x * self.levels) / self.levels


class JPEG(Defense):
    """JPEG compression (Dziugaite et al. 2016). ``differentiable=False`` runs the real codec (libjpeg via Pillow,
    4:2:0 chroma subsampling) and has no gradient: called with gradients enabled on an input that requires grad
    (a full-gradient attack) it raises :class:`InputError` instead of handing the attack a silent zero gradient;
    attack it through BPDA (the "bpda" threat model runs the defense with gradients off). ``differentiable=True``
    uses kornia's differentiable JPEG approximation (for full-gradient attacks)."""

    def __init__(self, quality: int = 75, differentiable: bool = False) -> None:
        super().__init__()
        if not 1 <= quality <= 100:
            raise InputError(f"JPEG quality must be in 1..100, got {quality}")
        self.quality, self.differentiable = int(quality), differentiable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        if self.differentiable:
            from kornia.enhance import jpeg_codec_differentiable

            q = torch.full((x.shape[0],), float(self.quality), device=x.device, dtype=x.dtype)
            return jpeg_codec_differentiable(x, q).clamp(0, 1)
        if x.requires_grad and torch.is_grad_enabled():
            raise InputError("the real JPEG codec is not differentiable, so gradients through it would be zero and "
                             "a gradient attack would overstate its robustness; attack it with `--threat-model "
                             "bpda` (BPDAWrapper), or use kornia's differentiable approximation (Python: "
                             "load_defense('jpeg', differentiable=True); command line: --defense "
                             "jpeg:differentiable=True). Run it under torch.no_grad() or on x.detach() to just "
                             "compress images")
        out = []
        for img in (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy():
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=self.quality)
            buf.seek(0)
            out.append(np.asarray(Image.open(buf).convert("RGB")))
        return from_uint8(np.stack(out), dtype=x.dtype).to(x.device)


def _uniform_int(u: float, count: int) -> int:
    """An integer uniform on 0..count-1 from u ~ U[0, 1)."""
    return min(int(u * count), count - 1)


class Randomization(Defense):
    """Random resizing and padding (Xie et al. 2018): resize to a random r in [H, ⌊H·ratio⌋], zero-pad at a random
    offset to ⌊H·ratio⌋ (same for W), then resize back to H x W so the classifier sees its own input size.
    ratio = 331/299 as in the paper. Each image gets its own draw (size and offset), as each input does in the paper.

    Randomised unless seeded. ``seed`` makes it deterministic per call, as DiffPure and the SV sampler: a generator
    seeded with ``seed`` at every call draws the images' sizes and offsets in batch order, so the same batch gives the
    same output on every call (``randomized`` is then False, and EOT over repeated calls sees one draw);
    ``seed=None`` draws from torch's global generator. The draws are made on the CPU, so they do not depend on the
    device."""

    def __init__(self, ratio: float = 331 / 299, seed: int | None = None) -> None:
        super().__init__()
        if not (is_real(ratio) and ratio >= 1):
            raise InputError(f"randomization ratio (padded size / image size) must be a finite number >= 1, got "
                             f"{ratio!r} (Xie et al.: 331/299)")
        if seed is not None and not is_whole(seed):
            raise InputError(f"seed must be an integer or None, got {seed!r}")
        self.ratio, self.seed = float(ratio), seed

    @property
    def randomized(self) -> bool:
        return self.seed is None

    def extra_repr(self) -> str:
        return f"ratio={self.ratio:g}, seed={self.seed}"

    def _draws(self, n: int, h: int, w: int, big_h: int, big_w: int) -> list[tuple[int, int, int, int]]:
        """Per image (resized height, width, top, left), uniform over the sizes, then over the offsets."""
        u = torch.rand(n, 4, generator=call_generator(self.seed, torch.device("cpu")), dtype=torch.float64)
        draws = []
        for a, b, c, d in u.tolist():
            rh, rw = h + _uniform_int(a, big_h - h + 1), w + _uniform_int(b, big_w - w + 1)
            draws.append((rh, rw, _uniform_int(c, big_h - rh + 1), _uniform_int(d, big_w - rw + 1)))
        return draws

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        n, _, h, w = x.shape
        big_h, big_w = max(h + 1, int(h * self.ratio)), max(w + 1, int(w * self.ratio))
        groups: dict[tuple[int, int, int, int], list[int]] = {}
        for i, draw in enumerate(self._draws(n, h, w, big_h, big_w)):
            groups.setdefault(draw, []).append(i)  # images with the same draw are transformed together
        parts, order = [], []
        for (rh, rw, top, left), idx in groups.items():
            y = F.interpolate(x[idx], size=(rh, rw), mode="nearest")
            parts.append(F.pad(y, (left, big_w - rw - left, top, big_h - rh - top)))
            order += idx
        inverse = torch.empty(n, dtype=torch.long)
        inverse[order] = torch.arange(n)
        y = torch.cat(parts)[inverse.to(x.device)]
        return F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


class MedianFilter(Defense):
    """k x k median filter (reflect padding, via kornia). k = 1 is the identity."""

    def __init__(self, window: int = 3) -> None:
        super().__init__()
        if window < 1 or window % 2 == 0:
            raise InputError(f"median window must be an odd positive integer, got {window}")
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        if self.window // 2 >= min(x.shape[-2:]):
            raise InputError(f"median window {self.window} is too large for {x.shape[-2]}x{x.shape[-1]} images "
                             f"(its half-width must be below the image size); use a window of at most "
                             f"{2 * min(x.shape[-2:]) - 1}")
        from kornia.filters import median_blur

        return median_blur(x, (self.window, self.window))


@DEFENSES.register("bit-reduction")
def bit_reduction(bits: int = 4) -> nn.Module:
    """Bit-depth reduction / feature squeezing (Xu et al. 2018); bits=8 is the identity on 8-bit images."""
    return BitReduction(bits)


@DEFENSES.register("jpeg")
def jpeg(quality: int = 75, differentiable: bool = False) -> nn.Module:
    """JPEG compression (Dziugaite et al. 2016); real codec, or kornia's differentiable approximation."""
    return JPEG(quality, differentiable)


@DEFENSES.register("randomization")
def randomization(ratio: float = 331 / 299, seed: int | None = None) -> nn.Module:
    """Random resizing + padding (Xie et al. 2018), drawn per image; randomised (``seed``: the same output on every
    call)."""
    return Randomization(ratio, seed)


@DEFENSES.register("median")
def median(window: int = 3) -> nn.Module:
    """Median filter with a k x k window."""
    return MedianFilter(window)
