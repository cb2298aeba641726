"""A plain reference implementation of IRAD, written from the paper's equations without irad's optimisations.

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
It exists to check irad's optimised implementation independently (``tests/``) and to measure its speed-up
(:mod:`irad.bench.reference`: ``benchmarks/bench_irad.py``, ``irad bench --reference``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn



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


def run_edsr(encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
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
        feat = run_edsr(self.encoder, work)  # encoder pass 1 (SampleNet)
        return liif_query(feat, grid, cell, self._samp, self.max_queries).reshape(n, h, w, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        work, grid, cell = self._prepare(images)
        coord = grid
        if self.use_samplenet:
            feat = run_edsr(self.encoder, work)  # encoder pass 1 (SampleNet)
            shift_px = liif_query(feat, grid, cell, self._samp, self.max_queries)
            pixel = torch.tensor([2.0 / h, 2.0 / w], device=grid.device, dtype=grid.dtype)
            coord = grid + shift_px.to(grid.dtype) * pixel
        feat = run_edsr(self.encoder, work)  # encoder pass 2 (decoder)
        rgb = liif_query(feat, coord, cell, self._dec, self.max_queries)
        out = (rgb * 0.5 + 0.5).clamp(0.0, 1.0)
        return out.permute(0, 2, 1).reshape(n, 3, h, w).to(images.dtype)
