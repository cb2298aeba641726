"""Classifier registry, the normalising wrapper, and ``load_classifier``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from ..data import dataset_info
from ..errors import InputError, UnknownNameError, WeightsError
from ..registry import Registry
from ..utils.validation import values_unchecked
from ..weights import WEIGHTS, load_state_dict_file, load_strict, model_spec, read_meta, resolve_weights, weights_digest
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

    def set_input_range(self, input_range: Sequence[float] | None) -> None:
        """The value range ``(lo, hi)`` the network was trained on; [0, 1] images are mapped to it before the
        normalisation (``None`` or ``(0, 1)``: unchanged)."""
        lo, hi = (0.0, 1.0) if input_range is None else (float(input_range[0]), float(input_range[1]))
        if not hi > lo:
            raise InputError(f"input_range must be (low, high) with high > low, e.g. (0, 255); got {input_range}")
        self.input_range = (lo, hi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            raise InputError(f"classifier input must be a floating-point batch in [0, 1], got dtype {x.dtype}; "
                             f"convert 8-bit images with x.float() / 255")
        # one check at this public boundary (skipped inside an attack's iterations): NaN logits say nothing
        if not values_unchecked() and not torch.isfinite(x).all():
            raise InputError("classifier input contains NaN or Inf values; check the images (or the defense or attack "
                             "that produced them)")
        if x.dtype != self.mean.dtype:
            x = x.to(self.mean.dtype)  # e.g. a float64 batch for float32 weights: computed in the weights' dtype
        lo, hi = getattr(self, "input_range", (0.0, 1.0))
        if (lo, hi) != (0.0, 1.0):
            x = lo + (hi - lo) * x
        if self.normalized:
            x = (x - self.mean) / self.std
        return self.net(x)

    def extra_repr(self) -> str:
        extra = "" if getattr(self, "input_range", (0.0, 1.0)) == (0.0, 1.0) else f", input_range={self.input_range}"
        return (f"arch={self.arch!r}, dataset={self.dataset!r}, mean={self.mean.flatten().tolist()}, "
                f"std={self.std.flatten().tolist()}{extra}")


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
    for spec in WEIGHTS.specs():
        if spec.kind == "classifier" and arch in (None, spec.arch) and dataset in (None, spec.dataset):
            out.append(spec.name)
    return out


def _catalog_meta_for(path: Path) -> dict:
    """Metadata of a registered weight set whose file (or original third-party file) is ``path``, by sha256.

    This is how an original checkpoint without metadata (e.g. ``resnet20-12fca82f.th``) gets its normalisation."""
    from ..weights import weights_digest

    if not path.is_file():
        return {}
    try:
        digest = weights_digest(path)
    except WeightsError:
        return {}
    for spec in WEIGHTS.specs():
        if digest in (spec.sha256, spec.meta.get("original_sha256")):
            return {**spec.meta, "arch": spec.arch, "dataset": spec.dataset}
    return {}


_ASSUMED_WARNED: set[str] = set()


def load_classifier(name: str, dataset: str = "cifar10", weights: str | Path | None = "default",
                    device: str | torch.device = "cpu", *, mean: Sequence[float] | None = None,
                    std: Sequence[float] | None = None, num_classes: int | None = None,
                    input_range: tuple[float, float] | None = None) -> ImageClassifier:
    """Build classifier ``name`` for ``dataset`` and load ``weights``, in eval mode. It takes [0, 1] images.

    ``weights``: ``"default"`` (the default) = the registered pretrained weights for (name, dataset), an error if
    there are none; a registered weight name (see ``irad.weights.WEIGHTS``); a file path (``.safetensors`` with
    its metadata (or the ``.json`` sidecar of the older two-file format), or a PyTorch checkpoint: a state dict, or one under ``state_dict`` / ``model`` / ``net``
    ..., ``module.`` prefixes allowed); or ``None`` = random initialisation, explicitly.

    What the network expects, for checkpoints that do not say (a third-party file without metadata): ``mean`` and
    ``std`` (per channel, in the units of ``input_range``; ``mean=(0, 0, 0), std=(1, 1, 1)`` = no normalisation),
    ``num_classes``, and ``input_range`` (the value range the network was trained on, ``(0, 1)`` or ``(0, 255)``;
    images are mapped from [0, 1] to it first). Given values override the file's metadata. When a file's metadata
    gives no normalisation and none is passed, the dataset's standard one is assumed, with a warning (once per file)
    naming it and the fix: a wrong normalisation silently costs accuracy.
    """
    arch = CLASSIFIERS.get(name).name
    info = dataset_info(dataset, num_classes)
    for label, value in (("mean", mean), ("std", std)):
        if value is not None and (len(value) != 3 or not all(isinstance(v, (int, float)) for v in value)):
            raise InputError(f"{label} must be 3 numbers (one per RGB channel), got {value!r}")
    if std is not None and min(std) <= 0:
        raise InputError(f"std must be positive, got {std!r}")
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
        raise InputError(f"num_classes must be a whole number >= 1, got {num_classes!r}")
    if weights is None:
        model = build_classifier(arch, dataset, mean=mean, std=std, num_classes=num_classes)
        model.set_input_range(input_range)
        return model.to(device).eval()
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
        meta = {**spec.meta, **read_meta(path), "sha256": spec.sha256}
    else:
        path = Path(weights)
        meta = read_meta(path) or _catalog_meta_for(path)
        if meta.get("arch") is not None and str(meta["arch"]).lower() != arch:
            raise WeightsError(f"{path} holds a {meta['arch']} ({meta.get('dataset')}), not a {arch}; "
                               f"use load_classifier({meta['arch']!r}, weights=...)")
    if mean is None and std is None and "mean" not in meta:
        _warn_assumed_normalisation(arch, dataset, path, info)
    norm_mean = mean if mean is not None else (meta["mean"] if "mean" in meta else info.mean)
    norm_std = std if std is not None else (meta["std"] if "std" in meta else info.std)  # None: raw [0, 1] input
    args = model_spec(meta, arch, str(path), loader="load_classifier({name!r}, weights=...)") or {}
    classes = int(num_classes or args.get("num_classes", meta.get("num_classes", info.num_classes)))
    model = ImageClassifier(CLASSIFIERS.build(arch, num_classes=classes), norm_mean, norm_std, arch, dataset)
    model.set_input_range(input_range or meta.get("input_range"))
    load_strict(model.net, load_state_dict_file(path), f"{arch} from {path}")
    model.weights_sha256 = meta.get("sha256") or weights_digest(path)  # identifies results computed with it
    return model.to(device).eval()


def _warn_assumed_normalisation(arch: str, dataset: str, path: Path, info) -> None:
    key = str(Path(path).resolve())
    if key in _ASSUMED_WARNED:
        return
    _ASSUMED_WARNED.add(key)
    mean = ", ".join(f"{m:g}" for m in info.mean)
    std = ", ".join(f"{s:g}" for s in info.std)
    warnings.warn(f"{path} does not say how its {arch} normalises inputs: assuming {dataset}'s mean ({mean}) and std "
                  f"({std}) on [0, 1] images. If its authors used others (e.g. ImageNet's 0.485, 0.456, 0.406 / "
                  f"0.229, 0.224, 0.225), pass them: load_classifier({arch!r}, weights=..., mean=(...), std=(...)), "
                  f"or --victim {arch}:weights=PATH,mean=[...],std=[...]; compare the clean accuracy with the one "
                  f"its authors report", stacklevel=3)
