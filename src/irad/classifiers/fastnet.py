"""A small, fast CIFAR network, in the spirit of the speed-run literature (Page 2018 "ResNet-9", Jordan 2024
"airbench"): a 2x2 patch-whitening stem whose weights are initialised from the data's patch covariance, then three
conv-pool-BN-GELU blocks. It reaches >= 90 % on CIFAR-10 with a short CPU schedule (see the README).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvGroup(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding="same", bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch, momentum=0.4)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding="same", bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch, momentum=0.4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.gelu(self.bn1(x))
        return F.gelu(self.bn2(self.conv2(x)))


class FastNet(nn.Module):
    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (64, 256, 256)) -> None:
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
        self.layers = nn.Sequential(
            ConvGroup(24, widths[0]), ConvGroup(widths[0], widths[1]), ConvGroup(widths[1], widths[2])
        )
        self.head = nn.Linear(widths[2], num_classes, bias=False)

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the stem to ZCA-like whitening of 2x2 patches of ``images`` (N,3,H,W in the model's input space)."""
        patches = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
        cov = torch.cov(patches.T)
        eigvals, eigvecs = torch.linalg.eigh(cov)
        filters = (eigvecs.T / torch.sqrt(eigvals + eps)[:, None]).reshape(12, 3, 2, 2).float()
        self.whiten.weight.copy_(torch.cat([filters, -filters]))
        self.whiten.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.whiten(x))
        x = self.layers(x)
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return self.head(x) / 9.0
