"""``irad train nrp``: train the purifier of the NRP baseline (Naseer et al., "A Self-supervised Approach for
Adversarial Robustness", CVPR 2020).

Per batch of clean training images x (random translation and flip), the self-supervised perturbation (SSP)

    x' = argmax_{||x' - x||_inf <= eps, x' in [0, 1]} ||F(x') - F(x)||^2

is found by ``ssp_steps`` signed-gradient ascent steps from a random start in the eps-ball, with F a fixed feature
layer; then one Adam step on the purifier P lowers

    ||F(P(x')) - F(x)||^2 + pixel_weight ||P(x') - x||^2        (both mean squared errors)

No labels are used. Deviations from the paper (see :mod:`irad.defenses.nrp`): F is a layer of a CIFAR classifier
from the zoo (default ``layers.1`` of the shipped ``fastnet-irad-cifar10``; NRP uses ImageNet VGG-16 features), P is
a small residual network, and NRP's discriminator loss is left out. PSNR of the purified SSP images and of the
purified clean images against the clean held-out images goes to ``log.jsonl``; the run checkpoints and resumes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..classifiers import load_classifier
from ..classifiers.zoo import ImageClassifier
from ..data import ImageDataset, load_dataset
from ..defenses.nrp import NeuralRepresentationPurifier, check_nrp_arch
from ..errors import InputError
from ..metrics import mean_psnr
from ..utils import resolve_device, seed_everything
from ..weights import save_weights
from .augment import random_crop_flip
from .loop import Step, train_steps
from .rundir import RunDir


@dataclass
class NRPConfig:
    dataset: str = "cifar10"
    width: int = 32  # purifier features
    blocks: int = 4  # purifier residual blocks
    feature_net: str = "fastnet"  # classifier whose layer is F (NRP: ImageNet VGG-16)
    feature_weights: str = "default"  # its weights: registered name, 'default', or a file
    feature_layer: str = "layers.1"  # F: the output of this sub-module of the classifier's net
    eps: float = 16 / 255  # L-inf budget of the SSP (NRP: 16/255)
    ssp_steps: int = 5  # signed-gradient steps of the SSP
    ssp_step: float = 4 / 255  # their size
    pixel_weight: float = 100.0  # weight of the pixel MSE against the feature MSE
    epochs: float = 1.0  # may be fractional
    batch_size: int = 32
    lr: float = 5e-4  # Adam, constant
    pad: int = 4  # random translation by up to this many pixels (reflect), plus horizontal flips
    train_limit: int | None = None  # use only the first N training images
    val_images: int = 64
    val_size: int = 5000
    checkpoint_every: int = 50
    seed: int = 0


class _Stop(Exception):
    """Raised by :class:`LayerFeatures`'s hook to skip the layers after the one it reads."""


class LayerFeatures(nn.Module):
    """F(x): the output of sub-module ``layer`` of a frozen classifier's ``net`` (in eval mode) for [0, 1] images; the
    layers after it are not run."""

    def __init__(self, classifier: ImageClassifier, layer: str) -> None:
        super().__init__()
        names = [n for n, _ in classifier.net.named_modules() if n]
        if layer not in names:
            shown = [n for n in names if n.count(".") <= 1][:24]
            raise InputError(f"classifier {classifier.arch!r} has no layer {layer!r}; its layers include "
                             f"{', '.join(shown)}")
        self.classifier = classifier.eval().requires_grad_(False)
        self.layer = layer

    def train(self, mode: bool = True) -> "LayerFeatures":
        return super().train(False)  # always eval: batch norm uses its running statistics

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        found: list[torch.Tensor] = []

        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            found.append(output)
            raise _Stop

        handle = self.classifier.net.get_submodule(self.layer).register_forward_hook(hook)
        try:
            self.classifier(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        return found[0]


def feature_distortion(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two feature maps."""
    return (a - b).pow(2).mean()


def ssp(x: torch.Tensor, features: nn.Module, eps: float, step: float, steps: int,
        generator: torch.Generator | None = None, target: torch.Tensor | None = None) -> torch.Tensor:
    """The self-supervised perturbation of NRP: x' in the L-inf ``eps``-ball around ``x`` (and in [0, 1]) with a
    large feature distortion ||F(x') - F(x)||^2, by ``steps`` signed-gradient ascent steps of size ``step`` from a
    uniform random start (drawn with ``generator``). ``target``: F(x) when already computed. Returns x' detached."""
    with torch.no_grad():
        target = features(x) if target is None else target
        start = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device, x.dtype) * eps
        x_adv = (x + start).clamp(0, 1)
    for _ in range(steps):
        with torch.enable_grad():
            x_adv.requires_grad_(True)
            grad, = torch.autograd.grad(feature_distortion(features(x_adv), target), x_adv)
        with torch.no_grad():
            x_adv = torch.minimum(torch.maximum(x_adv + step * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def check_config(cfg: NRPConfig) -> None:
    check_nrp_arch(cfg.width, cfg.blocks)
    for name, low in (("ssp_steps", 0), ("batch_size", 1), ("val_images", 1), ("checkpoint_every", 1), ("pad", 0)):
        if getattr(cfg, name) < low:
            raise InputError(f"NRP training: {name} must be >= {low}, got {getattr(cfg, name)}")
    if cfg.train_limit is not None and cfg.train_limit < 1:
        raise InputError(f"NRP training: train_limit must be >= 1, got {cfg.train_limit}")
    if not 0 < cfg.eps <= 1 or not 0 < cfg.ssp_step <= 1:
        raise InputError(f"NRP training: eps and ssp_step must lie in (0, 1], got {cfg.eps}, {cfg.ssp_step}")
    if not (math.isfinite(cfg.pixel_weight) and cfg.pixel_weight >= 0) or not cfg.lr > 0 or not cfg.epochs > 0:
        raise InputError(f"NRP training: need pixel_weight >= 0, lr > 0 and epochs > 0, got {cfg.pixel_weight}, "
                         f"{cfg.lr}, {cfg.epochs}")


@torch.no_grad()
def validate(purifier: nn.Module, features: nn.Module, x_val: torch.Tensor, x_ssp: torch.Tensor,
             target: torch.Tensor) -> dict[str, float]:
    """PSNR against the clean validation images of the purified SSP images (``val_psnr``) and of the purified clean
    images (``val_psnr_clean``), and the feature distortion left in the purified SSP images."""
    purifier.eval()
    out = purifier(x_ssp)
    return {"val_psnr": round(mean_psnr(out, x_val), 3), "val_psnr_clean": round(mean_psnr(purifier(x_val), x_val), 3),
            "val_feature_loss": round(float(feature_distortion(features(out), target)), 5)}


def train_nrp(cfg: NRPConfig, out: str | Path, data_root=None, device=None, command: list[str] | None = None,
              progress: bool = True) -> Path:
    """Train the purifier, checkpointing every ``checkpoint_every`` steps and validating at each epoch end (resumes
    from ``out/checkpoint.pt``); returns ``out/nrp.safetensors``."""
    check_config(cfg)
    dev = resolve_device(device)
    run = RunDir(out, command)
    seed_everything(cfg.seed)
    train = load_dataset(cfg.dataset, "train", root=data_root, val_size=cfg.val_size)
    val = load_dataset(cfg.dataset, "val", root=data_root, val_size=cfg.val_size)
    if not isinstance(train, ImageDataset) or not isinstance(val, ImageDataset):
        raise InputError("NRP training needs an in-memory dataset (CIFAR .npz or torchvision folders)")
    n_train = len(train) if cfg.train_limit is None else min(cfg.train_limit, len(train))
    if cfg.pad >= min(train.images.shape[1:3]):
        raise InputError(f"NRP training: pad {cfg.pad} must be smaller than the {train.images.shape[1:3]} images")
    classifier = load_classifier(cfg.feature_net, cfg.dataset, cfg.feature_weights, device=dev)
    features = LayerFeatures(classifier, cfg.feature_layer)
    purifier = NeuralRepresentationPurifier(cfg.width, cfg.blocks).to(dev)
    opt = torch.optim.Adam(purifier.parameters(), lr=cfg.lr)

    x_val = val.tensors(cfg.val_images)[0].to(dev)
    with torch.no_grad():
        target_val = features(x_val)
    x_val_ssp = ssp(x_val, features, cfg.eps, cfg.ssp_step, cfg.ssp_steps, torch.Generator().manual_seed(cfg.seed),
                    target_val)
    def loss_fn(step: Step) -> tuple[torch.Tensor, dict[str, float]]:
        gen = step.generator
        x = random_crop_flip(train.subset(step.indices).tensors()[0], cfg.pad, gen).to(dev)
        with torch.no_grad():
            target = features(x)
        perturbed = ssp(x, features, cfg.eps, cfg.ssp_step, cfg.ssp_steps, gen, target)  # draws for the whole batch
        x, target, perturbed = x[step.share], target[step.share], perturbed[step.share]
        purified = step.net(perturbed)
        feature_loss = feature_distortion(features(purified), target)
        pixel_loss = (purified - x).pow(2).mean()
        return (feature_loss + cfg.pixel_weight * pixel_loss,
                {"train_feature_loss": feature_loss.item(), "train_pixel_loss": pixel_loss.item()})

    def validation() -> dict[str, float]:
        return validate(purifier, features, x_val, x_val_ssp, target_val)

    def start() -> dict[str, float]:
        return {"device": str(dev), "train_images": n_train, "val_psnr_ssp": round(mean_psnr(x_val_ssp, x_val), 3),
                "val_feature_loss_ssp": round(float(feature_distortion(features(x_val_ssp), target_val)), 5),
                **validation()}

    done = train_steps(run, cfg, purifier, opt, n_train, loss_fn, validation, "train_loss", "nrp purifier", progress,
                       start)
    purifier.eval()
    # (a finished run resumed from a checkpoint older than the validation it now keeps: validate once more)
    last = {k: v for k, v in done.items() if k.startswith("val")} or validation()

    path = run.path / "nrp.safetensors"
    save_weights(purifier.state_dict(), path, {
        "kind": "defense", "arch": "nrp", "dataset": cfg.dataset,
        "spec": {"name": "nrp", "args": {"width": cfg.width, "blocks": cfg.blocks}},
        "paper": "Naseer et al., A Self-supervised Approach for Adversarial Robustness, CVPR 2020",
        "settings": {"width": cfg.width, "blocks": cfg.blocks},
        "features": {"net": cfg.feature_net, "weights": cfg.feature_weights, "layer": cfg.feature_layer,
                     "sha256": classifier.weights_sha256},
        "trained_against": [cfg.feature_net], **last,
        "config": asdict(cfg), "command": run.command, "device": str(dev),
    })
    run.log({"event": "done", "weights": str(path)})
    return path
