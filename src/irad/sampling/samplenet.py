"""SampleNet (Eq. 10, §4.3): a learned per-pixel shift U(i, j) = G(i, j) + SampleNet(F(i, j), [i, j])."""

from __future__ import annotations

import torch
from torch import nn

from ..reconstruction.base import ContinuousImage
from ..reconstruction.implicit import EDSREncoder, LocalEnsembleMLP
from ..errors import InputError
from .samplers import SAMPLERS, Sampler


@SAMPLERS.register("samplenet")
class SampleNet(Sampler):
    """A 5-layer MLP (hidden 256 x 4) on [3x3-unfolded encoder feature, relative coordinate, cell], queried with
    LIIF's local ensemble at the pixel grid G, predicting a 2-D shift in pixels.

    It reads the per-pixel features F = FEAT(I) of the implicit reconstruction (computed once, shared with the
    decoder). For reconstructions without features (nearest, bilinear; Table 15) pass ``encoder=`` (the implicit
    representation's encoder, as the paper does), which is then run on the image.

    The last layer starts at zero, so an untrained SampleNet is the identity sampler.
    """

    def __init__(self, feat_dim: int = 64, hidden: tuple[int, ...] = (256, 256, 256, 256),
                 encoder: EDSREncoder | None = None) -> None:
        super().__init__()
        self.config = {"feat_dim": feat_dim, "hidden": list(hidden)}
        self.net = LocalEnsembleMLP(feat_dim, 2, tuple(hidden))
        nn.init.zeros_(self.net.mlp[-1].weight)
        nn.init.zeros_(self.net.mlp[-1].bias)
        self.encoder = encoder

    def shift(self, features: torch.Tensor, grid: torch.Tensor | None = None) -> torch.Tensor:
        """The predicted shift (N x H x W x 2, pixels) at the pixel grid G (queried once per pixel, see
        ``LocalEnsembleMLP.at_grid``)."""
        return self.net.at_grid(features).permute(0, 2, 3, 1)

    def forward(self, phi: ContinuousImage, grid: torch.Tensor) -> torch.Tensor:
        features = phi.features
        if features is None:
            if self.encoder is None:
                raise InputError("SampleNet needs per-pixel features: use the implicit reconstruction or pass "
                                 "SampleNet(encoder=...) for nearest/bilinear reconstructions")
            features = self.encoder(phi.images)
        return grid + self.shift(features, grid)
