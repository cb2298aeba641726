"""Image-quality metrics on [0, 1] N x C x H x W batches, one value per image (Table 17, App. A.7).

* :func:`psnr`: 10 log10(1 / MSE) (Hore & Ziou 2010), MSE over all pixels and channels of an image.
* :func:`ssim`: SSIM (Wang et al. 2004) with an 11 x 11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, the mean of
  the SSIM map (kornia's implementation).
* :func:`fft_band_losses`: mean absolute difference of the 2-D orthonormal Fourier coefficients of the two images
  (each channel), split into a low band, radial frequency ≤ ``cutoff`` cycles per pixel (default 0.25, half the
  Nyquist frequency of 0.5), and the high band above it. The paper names the losses without defining them; this is
  the definition irad implements.
* :func:`lpips_distance`: LPIPS (Zhang et al. 2018) through the ``lpips`` package, when it and its backbone
  weights are available (they cannot be downloaded everywhere); raises :class:`MetricUnavailable` otherwise.
"""

from __future__ import annotations

import torch

from .errors import IradError


class MetricUnavailable(IradError, RuntimeError):
    """A metric whose implementation or weights are not installed (the message says how to get them)."""


def _pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"metrics compare two N x C x H x W batches of one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")


def psnr(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Per-image PSNR (dB) for values in [0, 1]; identical images give 10 log10(1 / eps) = 100 dB."""
    _pair(a, b)
    mse = ((a.double() - b.double()) ** 2).mean(dim=(1, 2, 3)).clamp_min(eps)
    return (-10.0 * torch.log10(mse)).to(a.dtype)


def mean_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """The mean over images of :func:`psnr` (dB), the figure training logs report."""
    return float(psnr(a, b).mean())


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004), the mean of kornia's SSIM map (Gaussian window, σ = 1.5)."""
    import kornia

    _pair(a, b)
    window = min(window, a.shape[-1], a.shape[-2]) | 1  # odd, and no larger than the image
    return kornia.metrics.ssim(a, b, window_size=window, max_val=1.0).mean(dim=(1, 2, 3))


def radial_frequency(h: int, w: int, device=None) -> torch.Tensor:
    """|f| in cycles per pixel of every coefficient of an h x w 2-D DFT (torch.fft.fft2 order)."""
    fy = torch.fft.fftfreq(h, device=device).view(h, 1)
    fx = torch.fft.fftfreq(w, device=device).view(1, w)
    return torch.sqrt(fy ** 2 + fx ** 2)


def fft_band_losses(a: torch.Tensor, b: torch.Tensor, cutoff: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (low, high) FFT losses: mean |FFT(a) - FFT(b)| (orthonormal 2-D DFT of each channel) over the
    coefficients with radial frequency ≤ ``cutoff`` cycles/pixel (low) and > ``cutoff`` (high)."""
    _pair(a, b)
    diff = torch.fft.fft2(a.double() - b.double(), norm="ortho").abs()  # linear: FFT(a) - FFT(b) = FFT(a - b)
    low = radial_frequency(a.shape[-2], a.shape[-1], a.device) <= cutoff
    return (diff[..., low].mean(dim=(1, 2)).to(a.dtype), diff[..., ~low].mean(dim=(1, 2)).to(a.dtype))


_LPIPS: dict[str, torch.nn.Module] = {}


def lpips_distance(a: torch.Tensor, b: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """Per-image LPIPS (Zhang et al. 2018, ``lpips`` package, backbone ``net``); :class:`MetricUnavailable` when the
    package or its pretrained backbone (torchvision's ImageNet weights) cannot be loaded here."""
    _pair(a, b)
    if net not in _LPIPS:
        try:
            import lpips  # optional: pip install lpips
        except ImportError as exc:
            raise MetricUnavailable("LPIPS needs the `lpips` package: pip install lpips (its backbone weights come "
                                    "from torchvision's download cache, $TORCH_HOME)") from exc
        try:
            _LPIPS[net] = lpips.LPIPS(net=net, verbose=False).eval()
        except Exception as exc:  # no network, no cached torchvision weights
            raise MetricUnavailable(f"LPIPS could not load its {net} backbone weights ({type(exc).__name__}: "
                                    f"{str(exc)[:120]}); put torchvision's pretrained {net} weights in $TORCH_HOME "
                                    "(a machine with internet fetches them on first use)") from exc
    model = _LPIPS[net].to(a.device)
    with torch.no_grad():
        return model(a * 2 - 1, b * 2 - 1).flatten()
