"""Image resampling IR(RECONS, SAMPLER) of Eq. 2-4: Î[i, j] = φ(U[i, j]), φ = RECONS(I), U = SAMPLER(φ, G)."""

from __future__ import annotations

import contextlib

import torch

from .reconstruction.base import Reconstruction, pixel_grid
from .sampling.samplers import IdentitySampler, Sampler
from .defense_base import Defense
from .errors import InputError
from .utils.validation import check_images

#: numeric precisions of :class:`ImageResampler` (``"bf16"``: torch.autocast with bfloat16)
PRECISIONS = ("fp32", "bf16")


class ImageResampler(Defense):
    """Any reconstruction combined with any sampler; maps [0, 1] N x 3 x H x W to [0, 1] N x 3 x H x W.

    Differentiable end to end (gradients reach the input through φ and, for learned samplers, through U).
    ``precision="bf16"`` runs reconstruction and sampling under ``torch.autocast(bfloat16)`` (pixel coordinates stay
    fp32; the output has the input's dtype): meant for GPUs with bf16 tensor cores (speed not measured here); slow
    on CPUs without bf16 arithmetic. ``precision="fp32"`` adds no autocast context of its own, so inside a caller's
    ``torch.autocast`` region it follows the caller's setting.
    """

    def __init__(self, reconstruction: Reconstruction, sampler: Sampler, clamp: bool = True,
                 validate: bool = True, precision: str = "fp32") -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise InputError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
        self.reconstruction, self.sampler = reconstruction, sampler
        self.clamp, self.validate, self.precision = clamp, validate, precision

    @property
    def randomized(self) -> bool:
        return bool(getattr(self.sampler, "randomized", False) or getattr(self.reconstruction, "randomized", False))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.validate:
            check_images(images)
        n, _, h, w = images.shape
        param = next(self.parameters(), None)
        if param is not None and param.device != images.device:
            raise InputError(f"images are on {images.device} but the defense's weights are on {param.device}; move "
                             f"one of them (defense.to(images.device))")
        work = images if param is None else images.to(param.dtype)  # e.g. float64 input, float32 weights
        # fp32 must not switch off an autocast region the caller entered, so it adds no context at all
        autocast = (torch.autocast(images.device.type, dtype=torch.bfloat16) if self.precision == "bf16"
                    else contextlib.nullcontext())
        with autocast:
            phi = self.reconstruction(work)
            if isinstance(self.sampler, IdentitySampler):
                out = phi.query_grid()
            else:
                grid = pixel_grid(n, h, w, device=images.device, dtype=work.dtype)
                out = phi.query(self.sampler(phi, grid))
        out = out.clamp(0.0, 1.0) if self.clamp else out
        return out.to(images.dtype)
