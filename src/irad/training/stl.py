"""``irad train stl``: learn the convolutional dictionary of the STL defense (Sun et al., CVPR 2019).

Alternating minimisation of 1/2 ||x_h - sum_k d_k * z_k||^2 + lam ||z||_1 over high-pass crops x_h of clean training
images: sparse codes by FISTA with the dictionary fixed (no gradient), then one Adam step on the dictionary with the
codes fixed, then every atom renormalised to unit norm. Reconstruction PSNR of the full defense on held-out
validation images (clean in, clean out) goes to ``log.jsonl``; the run checkpoints and resumes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data import ImageDataset, from_uint8, load_dataset
from ..defenses.stl import (
    SparseTransformationLayer,
    check_stl_params,
    fista,
    lipschitz_constant,
    synthesize,
    tikhonov_lowpass,
)
from ..errors import InputError
from ..metrics import mean_psnr
from ..utils import resolve_device, seed_everything
from ..weights import save_weights
from .loop import Step, from_older_loop, train_steps
from .rundir import RunDir


@dataclass
class STLConfig:
    dataset: str = "cifar10"
    atoms: int = 64  # K, number of filters
    size: int = 7  # s, filters are 3 x s x s
    lam: float = 0.1  # sparsity weight (training and the defense's default)
    lowpass: float = 5.0  # Tikhonov weight of the low/high stratification
    iterations: int = 60  # FISTA steps of the defense (and of validation)
    train_iterations: int = 40  # FISTA steps for the codes of a training batch
    images: int = 4000  # the first N training images
    steps: int = 500
    batch_size: int = 32
    crop: int = 16  # random crops of this size (the dictionary is translation invariant)
    lr: float = 0.01  # Adam, cosine decay to 0 over the steps
    val_images: int = 64
    val_size: int = 5000
    eval_every: int = 100
    seed: int = 0


def normalize_atoms(atoms: torch.Tensor) -> torch.Tensor:
    """Each atom (K x C x s x s) scaled to unit Frobenius norm."""
    return atoms / atoms.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]


def _batch(images: torch.Tensor, cfg: STLConfig, gen: torch.Generator) -> torch.Tensor:
    """``batch_size`` random crops (random image, position and horizontal flip) of the uint8 pool, as [0, 1]."""
    n, _, h, w = images.shape
    idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
    tops = torch.randint(0, h - cfg.crop + 1, (cfg.batch_size,), generator=gen)
    lefts = torch.randint(0, w - cfg.crop + 1, (cfg.batch_size,), generator=gen)
    flips = torch.rand(cfg.batch_size, generator=gen) < 0.5
    crops = [images[i, :, t:t + cfg.crop, l:l + cfg.crop] for i, t, l in zip(idx, tops, lefts)]
    x = from_uint8(torch.stack([c.flip(-1) if f else c for c, f in zip(crops, flips)]), channels_last=False)
    return x


def _init_atoms(images: torch.Tensor, cfg: STLConfig, gen: torch.Generator) -> torch.Tensor:
    """Random s x s patches of high-pass training images, unit norm: a data-driven start."""
    x = from_uint8(images[torch.randint(0, images.shape[0], (cfg.atoms,), generator=gen)], channels_last=False)
    high = x - tikhonov_lowpass(x, cfg.lowpass)
    h, w = x.shape[-2:]
    tops = torch.randint(0, h - cfg.size + 1, (cfg.atoms,), generator=gen)
    lefts = torch.randint(0, w - cfg.size + 1, (cfg.atoms,), generator=gen)
    patches = torch.stack([high[k, :, t:t + cfg.size, l:l + cfg.size] for k, (t, l) in enumerate(zip(tops, lefts))])
    patches = patches + 1e-3 * torch.randn(patches.shape, generator=gen)  # no all-zero (flat) patches
    return normalize_atoms(patches)


def check_config(cfg: STLConfig) -> None:
    check_stl_params(cfg.lam, cfg.iterations, cfg.lowpass)
    for name in ("atoms", "size", "train_iterations", "images", "steps", "batch_size", "crop", "val_images",
                 "eval_every"):
        if getattr(cfg, name) < 1:
            raise InputError(f"STL training: {name} must be >= 1, got {getattr(cfg, name)}")
    if not cfg.lr > 0:
        raise InputError(f"STL training: lr must be > 0, got {cfg.lr}")


@torch.no_grad()
def validate(atoms: torch.Tensor, cfg: STLConfig, x_val: torch.Tensor, device: torch.device) -> dict[str, float]:
    """PSNR of the STL defense and of the low-pass layer alone against the clean validation images, and the fraction
    of non-zero codes."""
    module = SparseTransformationLayer(atoms.cpu(), cfg.lam, cfg.iterations, cfg.lowpass).to(device)
    x = x_val.to(device)
    low, high = module.split(x)
    z = module.codes(high)
    out = (low + synthesize(z, module.atoms)).clamp(0, 1)
    return {"val_psnr": round(mean_psnr(out, x), 3), "val_psnr_lowpass": round(mean_psnr(low.clamp(0, 1), x), 3),
            "val_nonzero": round(float((z != 0).float().mean()), 4)}


class Dictionary(torch.nn.Module):
    """The trained parameter: the atoms K x 3 x s x s (unit norm after every step)."""

    def __init__(self, atoms: torch.Tensor) -> None:
        super().__init__()
        self.atoms = torch.nn.Parameter(atoms)


def train_stl(cfg: STLConfig, out: str | Path, data_root=None, device=None, command: list[str] | None = None,
              progress: bool = True) -> Path:
    """Learn the dictionary, checkpointing at every validation (resumes from ``out/checkpoint.pt``); returns
    ``out/stl.safetensors``. The step loop is :func:`~irad.training.loop.train_steps` (a run of ``cfg.steps``)."""
    check_config(cfg)
    dev = resolve_device(device)
    run = RunDir(out, command)
    gen = seed_everything(cfg.seed)
    train = load_dataset(cfg.dataset, "train", root=data_root, val_size=cfg.val_size)
    val = load_dataset(cfg.dataset, "val", root=data_root, val_size=cfg.val_size)
    if not isinstance(train, ImageDataset) or not isinstance(val, ImageDataset):
        raise InputError("STL training needs an in-memory dataset (CIFAR .npz or torchvision folders)")
    pool = torch.from_numpy(train.images[:cfg.images]).permute(0, 3, 1, 2).contiguous()
    if min(pool.shape[-2:]) < max(cfg.crop, cfg.size):
        raise InputError(f"crop {cfg.crop} / atom size {cfg.size} exceed the {tuple(pool.shape[-2:])} images")
    x_val = val.tensors(cfg.val_images)[0]

    dictionary = Dictionary(_init_atoms(pool, cfg, gen)).to(dev)
    atoms = dictionary.atoms
    opt = torch.optim.Adam([atoms], lr=cfg.lr)

    def loss_fn(step: Step) -> tuple[torch.Tensor, dict[str, float]]:
        x = _batch(pool, cfg, step.generator).to(dev)
        high = x - tikhonov_lowpass(x, cfg.lowpass)
        with torch.no_grad():
            lip = lipschitz_constant(atoms, size=32, iterations=20)
            z = fista(high, atoms.detach(), cfg.lam, cfg.train_iterations, lip)
        residual = high - synthesize(z, atoms)
        loss = 0.5 * residual.pow(2).sum() / x.shape[0]
        return loss, {"objective": loss.item() + cfg.lam * float(z.abs().sum()) / x.shape[0],
                      "train_psnr": -10 * math.log10(max(residual.detach().pow(2).mean().item(), 1e-12))}

    @torch.no_grad()
    def project(step: int) -> None:
        atoms.copy_(normalize_atoms(atoms))

    def validation() -> dict[str, float]:
        return validate(atoms.detach(), cfg, x_val, dev)

    done = train_steps(run, cfg, dictionary, opt, cfg.images, loss_fn, validation, "loss", "stl dictionary", progress,
                       lambda: {"device": str(dev), "train_images": int(pool.shape[0]), **validation()},
                       steps=cfg.steps, checkpoint_every=cfg.eval_every, val_every=cfg.eval_every,
                       after_step=project, upgrade_checkpoint=_from_older_loop,
                       lr_at=lambda step, total: cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total)))

    weights_path = run.path / "stl.safetensors"
    save_weights({"atoms": atoms.detach()}, weights_path, {
        "kind": "defense", "arch": "stl", "dataset": cfg.dataset,
        "spec": {"name": "stl", "args": {"lam": cfg.lam, "iterations": cfg.iterations, "lowpass": cfg.lowpass}},
        "paper": "Sun et al., Adversarial Defense by Stratified Convolutional Sparse Coding, CVPR 2019",
        "settings": {"lam": cfg.lam, "iterations": cfg.iterations, "lowpass": cfg.lowpass, "atoms": cfg.atoms,
                     "size": cfg.size},
        "val_psnr": done.get("val_psnr"), "val_psnr_lowpass": done.get("val_psnr_lowpass"),
        "config": asdict(cfg), "command": run.command, "device": str(dev),
    })
    run.log({"event": "done", "weights": str(weights_path)})
    return weights_path


def _from_older_loop(ckpt: dict) -> dict:
    """STL's checkpoints from before it shared ``train_steps`` held the atoms at the top level."""
    return from_older_loop(ckpt, {"atoms": ckpt["atoms"]}) if "atoms" in ckpt and "model" not in ckpt else ckpt
