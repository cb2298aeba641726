"""NRP: the Neural Representation Purifier of Naseer et al., "A Self-supervised Approach for Adversarial Robustness"
(CVPR 2020), a baseline of the IRAD paper's Tables 2 and 3.

A purifier network P is trained, without labels, to undo the self-supervised perturbation (SSP): the L-inf bounded
perturbation x' of a clean image x that most distorts the features F(x) of a fixed network. P minimises
||F(P(x')) - F(x)||^2 + pixel_weight ||P(x') - x||^2 (see :mod:`irad.training.nrp`, ``irad train nrp``); at test
time the defense is P alone, in front of any classifier.

Deviations from the paper (all because this project trains on CPU, offline, on CIFAR-10):

* P is a small residual network (``width`` features, ``blocks`` conv-ReLU-conv blocks, defaults 32 and 4) with a
  global skip, P(x) = clamp(x + tail(body(head(x))), 0, 1), and a zero-initialised tail so that training starts at
  the identity; NRP's generator is a much larger RRDB network (ESRGAN style).
* F is an intermediate layer of a CIFAR classifier from the zoo (default: the shipped ``fastnet-irad-cifar10``,
  layer ``layers.1``) instead of ImageNet VGG-16 ``conv3_3`` features, which cannot be downloaded here.
* NRP's relativistic discriminator (adversarial) loss is left out; the pixel term is a plain mean squared error.

Differentiable end to end and deterministic; N x 3 x H x W in [0, 1], any H x W.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InputError, WeightsError
from ..utils.validation import check_images, is_whole
from ..weights import load_defense_weights, load_strict, model_spec
from ..defense_base import Defense
from .registry import DEFENSES

DEFAULT_WIDTH = 32
DEFAULT_BLOCKS = 4
TRAIN_HINT = "train them with `irad train nrp`"


def check_nrp_arch(width: int, blocks: int) -> None:
    """Raise :class:`InputError` unless ``width`` >= 1 and ``blocks`` >= 0 are integers."""
    for name, value, low in (("width", width, 1), ("blocks", blocks, 0)):
        if not is_whole(value, low):
            raise InputError(f"NRP {name} must be an integer >= {low}, got {value!r}")


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(x))), 3 x 3 convolutions, ``width`` channels."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


class NeuralRepresentationPurifier(Defense):
    """The purifier P: clamp(x + tail(h + body(h)), 0, 1) with h = head(2x - 1). A fresh one is the identity on
    [0, 1] images (the tail starts at zero)."""

    def __init__(self, width: int = DEFAULT_WIDTH, blocks: int = DEFAULT_BLOCKS) -> None:
        super().__init__()
        check_nrp_arch(width, blocks)
        self.width, self.blocks = width, blocks
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.tail = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def extra_repr(self) -> str:
        return f"width={self.width}, blocks={self.blocks}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        h = self.head(x * 2 - 1)
        return (x + self.tail(h + self.body(h))).clamp(0, 1)


def nrp_arch(state: dict[str, torch.Tensor], meta: dict[str, Any]) -> tuple[int, int]:
    """(width, blocks) of a weight file: from its metadata's model spec, else read off the tensors."""
    args = model_spec(meta, "nrp", "the NRP weight file") or {}
    if "width" in args and "blocks" in args:
        return int(args["width"]), int(args["blocks"])
    if "head.weight" not in state:
        raise WeightsError(f"the weight file has no 'head.weight' (keys {sorted(state)[:3]}): it is not an NRP "
                           f"purifier ({TRAIN_HINT})")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))}
    return int(state["head.weight"].shape[0]), len(blocks)


def load_nrp(weights: str | Path | None = None, dataset: str = "cifar10") -> NeuralRepresentationPurifier:
    """An NRP purifier from a weight file (registered name, 'default'/None, or a path); the architecture comes from
    the file's metadata."""
    state, meta = load_defense_weights("nrp", weights, dataset, TRAIN_HINT)
    module = NeuralRepresentationPurifier(*nrp_arch(state, meta))
    load_strict(module, state, "NRP purifier")
    module.meta = meta
    return module


@DEFENSES.register("nrp")
def nrp(dataset: str = "cifar10", weights: str | Path | None = None) -> NeuralRepresentationPurifier:
    """NRP (Naseer et al. 2020): a residual purifier trained to undo feature-distorting self-supervised
    perturbations.

    ``weights``: a file from `irad train nrp`, a registered name, or None/'default' (the first registered NRP
    weights for ``dataset``: ``nrp-cifar10-cpu`` ships for CIFAR-10)."""
    return load_nrp(weights, dataset)
