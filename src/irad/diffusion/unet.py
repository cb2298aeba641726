"""A small time-conditioned U-Net ε̂(x, t) in the style of DDPM (Ho et al. 2020), without attention, for 32x32-scale
images: residual blocks with GroupNorm and SiLU, a sinusoidal embedding of t added in every block, strided-conv
downsampling and nearest+conv upsampling with skip connections. ``mults`` gives the channel multiplier of each
resolution (its length is the number of resolutions), so H and W must be divisible by 2^(len(mults) - 1)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..utils.validation import is_whole

TIME_SCALE = 1000.0  # t in [0, 1] is embedded as 1000 t, the DDPM step index


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017) of the N times ``t``: N x dim."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half, 1))
    args = (t.float() * TIME_SCALE)[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim - 2 * half))


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), _conv(cin, cout)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2, self.drop, self.conv2 = _norm(cout), nn.Dropout(dropout), _conv(cout, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(self.drop(F.silu(self.norm2(h))))


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv(channels, channels, stride=2)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv(channels, channels)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def check_architecture(channels: int, mults: Sequence[int], blocks: int, dropout: float, in_channels: int) -> None:
    """Raise :class:`InputError` for a U-Net setting that cannot build a network."""
    for name, value in (("channels", channels), ("blocks", blocks), ("in_channels", in_channels)):
        if not is_whole(value, 1):
            raise InputError(f"score U-Net: {name} must be an integer >= 1, got {value!r}")
    if not mults or any(not is_whole(m, 1) for m in mults):
        raise InputError(f"score U-Net: mults must be a non-empty list of integers >= 1 (one per resolution), "
                         f"got {mults!r}")
    if not 0 <= dropout < 1:
        raise InputError(f"score U-Net: dropout must be in [0, 1), got {dropout!r}")


class ScoreUNet(nn.Module):
    """ε̂(x, t): images N x C x H x W in [-1, 1] (diffused to time t) and N times in [0, 1] -> predicted noise.

    ``channels``: width at full resolution; ``mults``: width multiplier per resolution (``(1, 2)``: 32x32 and
    16x16); ``blocks``: residual blocks per resolution on the way down (one more on the way up); ``dropout`` inside
    the blocks. The output convolution starts at zero (ε̂ = 0 before training)."""

    def __init__(self, channels: int = 32, mults: Sequence[int] = (1, 2), blocks: int = 1, dropout: float = 0.0,
                 in_channels: int = 3) -> None:
        super().__init__()
        mults = tuple(mults)
        check_architecture(channels, mults, blocks, dropout, in_channels)
        self.channels, self.mults, self.blocks = channels, mults, blocks
        self.dropout, self.in_channels = float(dropout), in_channels
        emb_dim = 4 * channels
        self.embed = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = _conv(in_channels, channels)
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        skips, ch = [channels], channels
        for level, mult in enumerate(mults):
            for _ in range(blocks):
                self.down.append(ResBlock(ch, channels * mult, emb_dim, dropout))
                ch = channels * mult
                skips.append(ch)
            if level < len(mults) - 1:
                self.down.append(Downsample(ch))
                skips.append(ch)
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, dropout), ResBlock(ch, ch, emb_dim, dropout)])
        for level, mult in reversed(list(enumerate(mults))):
            for _ in range(blocks + 1):
                self.up.append(ResBlock(ch + skips.pop(), channels * mult, emb_dim, dropout))
                ch = channels * mult
            if level > 0:
                self.up.append(Upsample(ch))
        self.norm_out, self.conv_out = _norm(ch), _conv(ch, in_channels)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def factor(self) -> int:
        """H and W must be multiples of this (the total downsampling)."""
        return 2 ** (len(self.mults) - 1)

    def architecture(self) -> dict[str, Any]:
        """The constructor's arguments (stored in a weight file's metadata to rebuild the network)."""
        return {"channels": self.channels, "mults": list(self.mults), "blocks": self.blocks,
                "dropout": self.dropout, "in_channels": self.in_channels}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.architecture().items())

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`InputError` unless ``x`` is N x in_channels x H x W with H, W multiples of ``factor``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise InputError(f"the score U-Net takes N x {self.in_channels} x H x W, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.factor or w % self.factor:
            raise InputError(f"the score U-Net downsamples {len(self.mults) - 1} times, so H and W must be divisible "
                             f"by {self.factor}; got {h}x{w} (pad or resize the images, or use a network with fewer "
                             f"resolutions)")

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        self.check_input(x)
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype)
        emb = self.embed(timestep_embedding(t.expand(x.shape[0]) if t.dim() == 0 else t, self.channels).to(x.dtype))
        h = self.conv_in(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:
            h = layer(torch.cat([h, skips.pop()], dim=1), emb) if isinstance(layer, ResBlock) else layer(h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))
