"""The implicit representation of Eq. 9 (LIIF, Chen et al. 2021), as IRAD uses it.

* ``FEAT``: EDSR-baseline (Lim et al. 2017) without upsampling: a 3x3 head, 16 residual blocks of 64 features,
  a 3x3 body tail and a global skip. Inputs are mapped from [0, 1] to [-1, 1] first.
* ``φ``: a 5-layer MLP (hidden 256 x 4) applied to [unfolded 3x3 feature of a latent code, relative coordinate,
  cell size] for each of the 4 latent codes around the query (local ensemble), blended with area weights.

Coordinates are pixel units (row, column) as everywhere in irad; internally the relative coordinate and cell are
scaled as in LIIF (one pixel = 2 units) so the MLP sees LIIF's input statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import RECONSTRUCTIONS, ContinuousImage, Reconstruction

_EPS_SHIFT = 1e-6
_OFFSETS = ((-1, -1), (-1, 1), (1, -1), (1, 1))
#: MLP rows per chunk on CPU: 256-wide fp32 activations of 2,048 rows (2 MiB) stay in cache, where one pass over a
#: 64-image batch (268 MB per activation) would stream through memory. GPUs want big chunks instead.
CPU_CHUNK_ROWS = 2048
GPU_CHUNK_ROWS = 1 << 20


def _chunk_rows(t: torch.Tensor) -> int:
    return CPU_CHUNK_ROWS if t.device.type == "cpu" else GPU_CHUNK_ROWS


def _mlp_tail(x: torch.Tensor, linears: list[nn.Linear], inplace: bool) -> torch.Tensor:
    """ReLU, then ``linears`` with ReLUs between them, as fused ``addmm`` + in-place ReLU (``inplace``: the first
    ReLU may overwrite ``x``)."""
    x = x.relu_() if inplace else torch.relu(x)
    for i, lin in enumerate(linears):
        x = torch.addmm(lin.bias, x, lin.weight.T)
        if i < len(linears) - 1:
            x = x.relu_()
    return x


def _floor_eps(t: torch.Tensor) -> torch.Tensor:
    """``floor(t + eps)`` computed exactly (eps = ``_EPS_SHIFT``): ``t`` within eps below an integer counts as it.

    Adding eps in floating point loses it once ``t`` is large (the fp32 spacing at 32 is 3.8e-6 > 2 eps), and a
    round-half-to-even of ``t - 0.5 + eps`` then picks the wrong code; comparing ``round(t) - t`` (exact for the
    values that matter) with eps does not depend on the magnitude of ``t``.
    """
    nearest = torch.round(t)
    return torch.where(nearest - t <= _EPS_SHIFT, nearest, torch.floor(t))


def _code_indices(u: torch.Tensor, size: int, offsets: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """LIIF's latent-code selection along one axis (pixel units, code k at coordinate k, cell [k - 0.5, k + 0.5)).

    Offset v = -1: the code whose cell holds ``u - 0.5 + eps``, i.e. ``floor(u + eps)``; v = +1: the next code;
    v = 0 (no local ensemble): the cell holding ``u + eps``. Clamped to the image (LIIF clamps the coordinate).
    """
    out: dict[int, torch.Tensor] = {}
    if -1 in offsets or 1 in offsets:
        lower = _floor_eps(u)
        out[-1], out[1] = lower.clamp(0, size - 1), (lower + 1).clamp(0, size - 1)
    if 0 in offsets:
        out[0] = _floor_eps(u + 0.5).clamp(0, size - 1)
    return out


class ResBlock(nn.Module):
    def __init__(self, n_feats: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.body(x)  # a fresh tensor: scaling and adding in place saves two passes over memory
        if self.res_scale != 1.0:
            residual = residual.mul_(self.res_scale)
        return residual.add_(x)


class EDSREncoder(nn.Module):
    """EDSR-baseline feature extractor (no upsampling): I (N,3,H,W in [0,1]) -> F (N, n_feats, H, W)."""

    def __init__(self, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.n_resblocks, self.out_dim = n_resblocks, n_feats
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)],
                                  nn.Conv2d(n_feats, n_feats, 3, padding=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.device.type == "cpu":  # oneDNN's preferred layout for these convolutions on CPU
            images = images.contiguous(memory_format=torch.channels_last)
        x = self.head((images - 0.5) / 0.5)
        return x + self.body(x)


def mlp(in_dim: int, out_dim: int, hidden: tuple[int, ...] = (256, 256, 256, 256)) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class LocalEnsembleMLP(nn.Module):
    """The query function of LIIF: MLP(feature, relative coordinate, cell) over the 4 nearest latent codes,
    blended by the area of the opposite rectangle (local ensemble). Used by the decoder φ (3 outputs, Eq. 9) and by
    SampleNet (2 outputs, Eq. 10).

    Computed without waste, with the same result: the MLP's first layer is linear in [feature, rel, cell], and a
    linear map of the 3x3-unfolded feature is a 3x3 convolution, so the feature part is computed once per latent
    code (``prepare``) instead of once per query and neighbour; queries gather 256-d rows instead of 576-d ones.
    """

    def __init__(self, feat_dim: int, out_dim: int, hidden: tuple[int, ...] = (256, 256, 256, 256),
                 feat_unfold: bool = True, cell_decode: bool = True, local_ensemble: bool = True) -> None:
        super().__init__()
        self.feat_unfold, self.cell_decode, self.local_ensemble = feat_unfold, cell_decode, local_ensemble
        self.feat_dim = feat_dim
        in_dim = feat_dim * (9 if feat_unfold else 1) + 2 + (2 if cell_decode else 0)
        self.mlp = mlp(in_dim, out_dim, hidden)
        self.out_dim = out_dim

    def _first_layer_parts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        lin: nn.Linear = self.mlp[0]
        k = self.feat_dim * (9 if self.feat_unfold else 1)
        w_rel = lin.weight[:, k:k + 2]
        w_cell = lin.weight[:, k + 2:k + 4] if self.cell_decode else None
        return lin.weight[:, :k], w_rel, w_cell, lin.bias

    def prepare(self, features: torch.Tensor) -> torch.Tensor:
        """Feature part of the first layer for every latent code: N x hidden x h x w.

        Equals Linear(unfold3x3(F)) since F.unfold orders (channel, ky, kx) like a conv kernel."""
        w_feat = self._first_layer_parts()[0]
        if self.feat_unfold:
            return F.conv2d(features, w_feat.reshape(-1, self.feat_dim, 3, 3), padding=1)
        return F.conv2d(features, w_feat[:, :, None, None])

    def _first_layer_bias(self, default_cell: bool) -> torch.Tensor:
        """The first layer's bias, plus the cell term when every query has the default cell (1 px = 2 LIIF units)."""
        _, _, w_cell, bias = self._first_layer_parts()
        return bias + w_cell.sum(dim=1) * 2.0 if self.cell_decode and default_cell else bias

    def _tail_linears(self) -> list[nn.Linear]:
        return [m for m in self.mlp[1:] if isinstance(m, nn.Linear)]

    def _rest(self, h1: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """Layers 2..5 of the MLP on first-layer pre-activations ``h1`` (..., hidden), in row chunks.

        Same maths as ``self.mlp[1:]``, written as fused ``addmm`` + in-place ReLU over chunks of rows that stay in
        the CPU's cache (``_chunk_rows``); ``inplace`` lets the first ReLU overwrite ``h1``."""
        shape = h1.shape
        rows = h1.reshape(-1, shape[-1])
        step, linears = _chunk_rows(rows), self._tail_linears()
        outs = [_mlp_tail(rows[i:i + step], linears, inplace) for i in range(0, rows.shape[0], step)]
        out = torch.cat(outs) if len(outs) > 1 else outs[0]
        return out.reshape(*shape[:-1], out.shape[-1])

    def forward(self, features: torch.Tensor, coords: torch.Tensor, cell: torch.Tensor | None = None,
                prepared: torch.Tensor | None = None, max_queries: int | None = None) -> torch.Tensor:
        """features: N x C x h x w; coords: N x H' x W' x 2 (pixel units of the h x w grid);
        cell: size of an output pixel in input pixels (N x H' x W' x 2, broadcastable; default 1).
        ``max_queries``: queries per chunk over the whole batch (default: cache-sized on CPU, large on GPU).
        Returns N x out_dim x H' x W'."""
        n, _, h, w = features.shape
        qh, qw = coords.shape[1], coords.shape[2]
        pre = self.prepare(features) if prepared is None else prepared
        # Coordinates stay in (at least) fp32 even under bf16 autocast: pixel indices must be exact.
        coord_dtype = torch.float64 if pre.dtype == torch.float64 else torch.float32
        coords = coords.to(coord_dtype).reshape(-1, 2)
        cells = None
        if cell is not None and self.cell_decode:
            cells = cell.to(coord_dtype).expand(n, qh, qw, 2).reshape(-1, 2)
        out = self._query(pre, coords, cells, qh * qw, max_queries)
        return out.reshape(n, qh, qw, self.out_dim).permute(0, 3, 1, 2)

    def _query(self, pre: torch.Tensor, coords: torch.Tensor, cells: torch.Tensor | None, per_image: int,
               max_queries: int | None) -> torch.Tensor:
        """Eq. 9 for flat queries ``coords`` (N*Q x 2, image-major; ``cells`` N*Q x 2 or None for cell 1).

        The first layer's feature part comes from ``pre`` (one row per latent code, bias folded in); the query's
        relative coordinate and cell enter as one small ``addmm``; the 4 neighbours run as one MLP batch."""
        n, c, h, w = pre.shape
        _, w_rel, w_cell, _ = self._first_layer_parts()
        # one row per latent code; the default cell (1 px) is the same for every query, so it is folded in here
        # (in pre's dtype: under bf16 autocast an fp32 bias would promote the table, doubling what the gather moves)
        table = pre.permute(0, 2, 3, 1).reshape(n * h * w, c) + self._first_layer_bias(cells is None).to(pre.dtype)
        linears = self._tail_linears()
        w_extra = torch.cat((w_rel, w_cell), dim=1) if cells is not None else w_rel
        offsets = _OFFSETS if self.local_ensemble else ((0, 0),)
        step = max_queries or max(1, _chunk_rows(coords) // len(offsets))
        outs = []
        for start in range(0, coords.shape[0], step):
            q = coords[start:start + step]
            image = torch.div(torch.arange(start, start + q.shape[0], device=q.device), per_image,
                              rounding_mode="floor") * (h * w)
            # LIIF's rule: for offset v, the code whose cell holds the query nudged half a pixel (+ eps) towards v.
            rows = _code_indices(q[:, 0].detach(), h, tuple(v for v, _ in offsets))
            cols = _code_indices(q[:, 1].detach(), w, tuple(v for _, v in offsets))
            kr = torch.stack([rows[v] for v, _ in offsets])  # K x m
            kc = torch.stack([cols[v] for _, v in offsets])
            index = (image + kr.long() * w + kc.long()).reshape(-1)
            rel = torch.stack((q[:, 0] - kr, q[:, 1] - kc), dim=-1) * 2.0  # K x m x 2
            extra = rel if cells is None else torch.cat(
                (rel, (cells[start:start + step] * 2.0).expand(len(offsets), -1, 2)), dim=-1)
            h1 = torch.addmm(table.index_select(0, index), extra.reshape(-1, extra.shape[-1]).to(table.dtype),
                             w_extra.T)
            pred = _mlp_tail(h1, linears, inplace=True).reshape(len(offsets), q.shape[0], self.out_dim)
            if not self.local_ensemble:
                outs.append(pred[0])
                continue
            area = (rel[..., 0] * rel[..., 1]).abs() + 1e-9  # K x m
            # Each prediction is weighted by the area of the rectangle diagonally opposite to its latent code.
            weight = area.flip(0) / area.sum(0)
            outs.append((pred * weight.unsqueeze(-1).to(pred.dtype)).sum(0))
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def at_grid(self, features: torch.Tensor, prepared: torch.Tensor | None = None) -> torch.Tensor:
        """``forward(features, G)`` at the pixel grid itself (cell 1), in one MLP pass per pixel.

        At an interior grid point the local ensemble gives the point's own latent code (relative coordinate 0) the
        weight 4 / (4 + 3e-9) and the others 1e-9 / (4 + 3e-9), so one evaluation reproduces it to ~1e-9. On the
        last row / column the clamped neighbours tie, and LIIF's rule averages the own code with the next one
        (relative coordinate -2 along the free axis); that is reproduced exactly here too.
        """
        if not self.local_ensemble:
            n, _, h, w = features.shape
            from .base import pixel_grid

            return self.forward(features, pixel_grid(n, h, w, device=features.device, dtype=features.dtype),
                                prepared=prepared)
        pre = self.prepare(features) if prepared is None else prepared
        n, c, h, w = pre.shape
        w_rel = self._first_layer_parts()[1]
        rows = pre.permute(0, 2, 3, 1) + self._first_layer_bias(default_cell=True).to(pre.dtype)  # N x h x w x hidden
        out = self._rest(rows)  # own code, rel = 0
        if h > 1 and w > 1:  # last row: mix with the right-hand neighbour; last column: with the one below
            step_c = (pre.new_tensor([0.0, -2.0]) @ w_rel.T)
            step_r = (pre.new_tensor([-2.0, 0.0]) @ w_rel.T)
            right = self._rest(rows[:, h - 1, 1:] + step_c)  # N x (w-1) x out
            below = self._rest(rows[:, 1:, w - 1] + step_r)  # N x (h-1) x out
            out = out.clone()
            out[:, h - 1, :w - 1] = 0.5 * (out[:, h - 1, :w - 1] + right)
            out[:, :h - 1, w - 1] = 0.5 * (out[:, :h - 1, w - 1] + below)
        elif h > 1 or w > 1:
            # a single row or column: the only tie is along the free axis
            out = self.forward(features, _grid_like(n, h, w, pre), prepared=pre).permute(0, 2, 3, 1)
        return out.permute(0, 3, 1, 2)


def _grid_like(n: int, h: int, w: int, ref: torch.Tensor) -> torch.Tensor:
    from .base import pixel_grid

    return pixel_grid(n, h, w, device=ref.device, dtype=ref.dtype)


class _ImplicitImage(ContinuousImage):
    def __init__(self, images: torch.Tensor, features: torch.Tensor, decoder: LocalEnsembleMLP,
                 residual: bool = False) -> None:
        super().__init__(images, features)
        self.decoder, self.residual = decoder, residual

    def query(self, coords: torch.Tensor, cell: torch.Tensor | None = None) -> torch.Tensor:
        out = self.decoder(self.features, coords, cell) * 0.5
        if not self.residual:
            return out + 0.5
        from .interpolation import BilinearReconstruction

        return out + BilinearReconstruction()(self.images).query(coords).to(out.dtype)

    def query_grid(self) -> torch.Tensor:
        out = self.decoder.at_grid(self.features) * 0.5  # one MLP pass per pixel, see at_grid
        return out + (self.images.to(out.dtype) if self.residual else 0.5)


class LIIFDecoder(LocalEnsembleMLP):
    """φ of Eq. 9: RGB (in [-1, 1] units) from latent codes; 5-layer MLP, hidden 256 x 4."""

    def __init__(self, feat_dim: int = 64, hidden: tuple[int, ...] = (256, 256, 256, 256)) -> None:
        super().__init__(feat_dim, 3, hidden)


@RECONSTRUCTIONS.register("implicit")
class ImplicitReconstruction(Reconstruction):
    """RECONS = LIIF: F = FEAT(I); φ(u, v) = Σ_k ω_k MLP(F_k, dist([u, v], k), cell) (Eq. 9).

    ``residual=True`` (not the paper's; a variant of the recipe study, docs/training/recipe-study) predicts a
    correction instead: φ(u, v) = bilinear(I)(u, v) + MLP-ensemble(u, v) / 2.
    """

    def __init__(self, n_resblocks: int = 16, n_feats: int = 64, hidden: tuple[int, ...] = (256, 256, 256, 256),
                 residual: bool = False):
        super().__init__()
        self.config = {"n_resblocks": n_resblocks, "n_feats": n_feats, "hidden": list(hidden)}
        if residual:  # only recorded when set, so the spec of every plain-LIIF weight file stays as it was
            self.config["residual"] = True
        self.residual = residual
        self.encoder = EDSREncoder(n_resblocks, n_feats)
        self.decoder = LIIFDecoder(n_feats, tuple(hidden))

    def forward(self, images: torch.Tensor) -> ContinuousImage:
        return self.from_features(images, self.encoder(images))

    def from_features(self, images: torch.Tensor, features: torch.Tensor) -> ContinuousImage:
        """φ of ``images`` whose encoder features ``features`` = FEAT(images) were computed already."""
        return _ImplicitImage(images, features, self.decoder, self.residual)
