"""Classifier registry, the normalising wrapper, and ``load_classifier``."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from ..data.datasets import dataset_info
from ..errors import InputError, UnknownNameError, WeightsError
from ..registry import Registry
from ..utils.io import sha256_file
from ..weights import WEIGHTS, load_state_dict_file, load_strict, read_sidecar, resolve_weights
from .fastnet import FastNet
from .resnet import ResNet
from .resnet_cifar import CifarResNet
from .vgg import VGG
from .wideresnet import WideResNet

CLASSIFIERS: Registry[nn.Module] = Registry("classifier")


class ImageClassifier(nn.Module):
    """``net((x - mean) / std)``: a classifier that takes raw [0, 1] images. ``net`` holds all parameters."""

    def __init__(self, net: nn.Module, mean: Sequence[float] | None, std: Sequence[float] | None,
                 arch: str = "", dataset: str = "") -> None:
        super().__init__()
        self.net = net
        self.arch, self.dataset = arch, dataset
        self.weights_sha256: str | None = None  # set by load_classifier: the checksum of the loaded weight file
        self.normalized = mean is not None
        self.register_buffer("mean", torch.tensor(mean or (0.0, 0.0, 0.0)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std or (1.0, 1.0, 1.0)).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            raise InputError(f"classifier input must be a floating-point batch in [0, 1], got dtype {x.dtype}; "
                             f"convert 8-bit images with x.float() / 255")
        if x.dtype != self.mean.dtype:
            x = x.to(self.mean.dtype)  # e.g. a float64 batch for float32 weights: computed in the weights' dtype
        if self.normalized:
            x = (x - self.mean) / self.std
        return self.net(x)

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, dataset={self.dataset!r}, mean={self.mean.flatten().tolist()}"


def _register(name: str, builder: Callable[[int], nn.Module], summary: str) -> None:
    def factory(num_classes: int = 10) -> nn.Module:
        return builder(num_classes)

    factory.__doc__ = summary
    CLASSIFIERS.register(name)(factory)


for _n in (3, 5, 7, 9):
    _register(f"resnet{6 * _n + 2}", lambda c, n=_n: CifarResNet(n, c),
              f"ResNet-{6 * _n + 2} of He et al. 2016 (CIFAR, option-A shortcuts)")
_register("resnet18", lambda c: ResNet((2, 2, 2, 2), c), "4-stage CIFAR ResNet-18 (64-512 channels)")
_register("resnet34", lambda c: ResNet((3, 4, 6, 3), c), "4-stage CIFAR ResNet-34 (64-512 channels)")
_register("wrn-28-10", lambda c: WideResNet(28, 10, c), "WideResNet-28-10 (Zagoruyko & Komodakis 2016)")
_register("wrn-70-16", lambda c: WideResNet(70, 16, c), "WideResNet-70-16")
_register("vgg16-bn", lambda c: VGG(num_classes=c), "VGG-16 with batch norm (CIFAR variant)")
_register("fastnet", lambda c: FastNet(c), "Small fast CIFAR network (patch-whitening stem + 3 conv groups)")


def build_classifier(arch: str, dataset: str = "cifar10", mean=None, std=None, num_classes: int | None = None,
                     ) -> ImageClassifier:
    """A randomly initialised classifier with the dataset's standard normalisation (unless given)."""
    info = dataset_info(dataset, num_classes)
    net = CLASSIFIERS.build(arch, num_classes=num_classes or info.num_classes)
    return ImageClassifier(net, mean or info.mean, std or info.std, arch, dataset)


def pretrained_names(arch: str | None = None, dataset: str | None = None) -> list[str]:
    """Names of registered classifier weights, optionally for one architecture / dataset."""
    out = []
    for name in WEIGHTS.names():
        spec = WEIGHTS.get(name).factory()
        if spec.kind == "classifier" and arch in (None, spec.arch) and dataset in (None, spec.dataset):
            out.append(name)
    return out


def _catalog_meta_for(path: Path) -> dict:
    """Metadata of a registered weight set whose file (or original third-party file) is ``path``, by sha256.

    This is how an original checkpoint without a sidecar (e.g. ``resnet20-12fca82f.th``) gets its normalisation."""
    from ..utils.io import sha256_file

    if not path.is_file():
        return {}
    digest = sha256_file(path)
    for name in WEIGHTS.names():
        spec = WEIGHTS.get(name).factory()
        if digest in (spec.sha256, spec.meta.get("original_sha256")):
            return {**spec.meta, "arch": spec.arch, "dataset": spec.dataset}
    return {}


def load_classifier(name: str, dataset: str = "cifar10", weights: str | Path | None = "default",
                    device: str | torch.device = "cpu") -> ImageClassifier:
    """Build classifier ``name`` for ``dataset`` and load ``weights``, in eval mode.

    ``weights``: ``"default"`` (the default) = the registered pretrained weights for (name, dataset), an error if
    there are none; a registered weight name (see ``irad.weights.WEIGHTS``); a file path (``.safetensors`` with
    its ``.json`` sidecar, or a PyTorch checkpoint); or ``None`` = random initialisation, explicitly.
    """
    arch = CLASSIFIERS.get(name).name
    if weights is None:
        return build_classifier(arch, dataset).to(device).eval()
    if isinstance(weights, str) and not Path(weights).suffix:
        tag = weights
        if tag == "default":
            found = pretrained_names(arch, dataset)
            if not found:
                raise UnknownNameError(f"no pretrained weights registered for {arch} on {dataset}; available for "
                                       f"{dataset}: {pretrained_names(dataset=dataset) or 'none'}. Train one with "
                                       f"`irad train classifier --arch {arch}` and pass weights=PATH (from the "
                                       f"command line: --victim {arch}:weights=PATH), or weights=None for an "
                                       f"untrained network.")
            tag = found[0]
        spec, path = resolve_weights(tag)
        if spec.kind != "classifier" or spec.arch != arch or spec.dataset != dataset:
            raise WeightsError(f"weights {tag!r} are for {spec.kind} {spec.arch} on {spec.dataset}, "
                               f"not classifier {arch} on {dataset}")
        meta = {**spec.meta, **read_sidecar(path), "sha256": spec.sha256}
    else:
        path = Path(weights)
        meta = read_sidecar(path) or _catalog_meta_for(path)
        if meta.get("arch") not in (None, arch):
            raise WeightsError(f"{path} holds a {meta['arch']} ({meta.get('dataset')}), not a {arch}; "
                               f"use load_classifier({meta['arch']!r}, weights=...)")
    info = dataset_info(dataset)
    mean = meta["mean"] if "mean" in meta else info.mean  # None in the metadata: the net takes raw [0, 1]
    std = meta["std"] if "std" in meta else info.std
    model = ImageClassifier(CLASSIFIERS.build(arch, num_classes=int(meta.get("num_classes", info.num_classes))),
                            mean, std, arch, dataset)
    load_strict(model.net, load_state_dict_file(path), f"{arch} from {path}")
    model.weights_sha256 = meta.get("sha256") or sha256_file(path)  # identifies results computed with it
    return model.to(device).eval()
