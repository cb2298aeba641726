"""``irad train diffusion``: the score model of the DiffPure baseline (Nie et al., ICML 2022).

Denoising score matching in its ε form (Ho et al. 2020; Song et al. 2021): a clean training image x_0 (random
horizontal flip, mapped to [-1, 1]) is diffused with the VP-SDE marginal x_t = α(t) x_0 + σ(t) ε and the U-Net
learns ε with an MSE loss. Adam with a linear warm-up, gradient clipping, and an exponential moving average (EMA)
of the weights, which is what the weight file holds (its decay ramps up as min(ema, (1 + step) / (10 + step)) so
that short runs are not dominated by the initial weights).

Times t ~ U(t_min, t_max) with t_max = 0.2 by default, not the full [0, 1] of a generative model: DiffPure only
ever evaluates the score on t in (0, t*] (t* = 0.1 on CIFAR-10; IRAD+DiffPure t* = 0.02..0.04), so a CPU budget is
spent where purification uses it. The weights' metadata records t_max and the defense warns for t* beyond it.

``log.jsonl`` gets the training loss and, every ``eval_every`` steps, the loss of the EMA weights (``val_loss``) and
of the current weights (``val_loss_raw``) on held-out validation images with fixed times (evenly spread over
[t_min, t_max]) and fixed noise, so the values are comparable across steps. The run checkpoints at every
evaluation and resumes from ``out/checkpoint.pt`` exactly: each step's batch, times and noise come from a generator
seeded by (seed, step), and its dropout masks from torch's global generator seeded the same way for that step only;
the result is ``out/diffpure.safetensors`` + ``.json``.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data import ImageDataset, from_uint8, load_dataset
from ..diffusion import VPSDE, ScoreUNet, denoising_loss, to_model_range
from ..diffusion.unet import check_architecture
from ..errors import InputError
from ..utils import resolve_device, seed_everything
from ..weights import save_weights
from .augment import random_crop_flip
from .loop import Step, from_older_loop, train_steps
from .rundir import RunDir


@dataclass
class DiffusionConfig:
    dataset: str = "cifar10"
    channels: int = 32  # U-Net width at full resolution
    mults: tuple[int, ...] = (1, 2)  # width multiplier per resolution (32x32, 16x16)
    blocks: int = 1  # residual blocks per resolution
    dropout: float = 0.0
    t_min: float = 1e-4  # training times t ~ U(t_min, t_max)
    t_max: float = 0.2  # purification only uses t <= t* (0.1 for DiffPure)
    images: int | None = None  # the first N training images (None: all)
    steps: int = 10000
    batch_size: int = 64
    lr: float = 5e-4  # Adam, linear warm-up over `warmup` steps, then constant
    warmup: int = 200
    grad_clip: float = 1.0
    ema: float = 0.999  # EMA decay of the saved weights (0: no averaging)
    val_images: int = 256
    val_size: int = 5000
    eval_every: int = 250
    seed: int = 0


def check_config(cfg: DiffusionConfig) -> None:
    check_architecture(cfg.channels, tuple(cfg.mults), cfg.blocks, cfg.dropout, 3)
    if not 0 <= cfg.t_min < cfg.t_max <= 1:
        raise InputError(f"diffusion training: need 0 <= t_min < t_max <= 1, got t_min={cfg.t_min}, "
                         f"t_max={cfg.t_max}")
    for name in ("steps", "batch_size", "val_images", "eval_every"):
        if getattr(cfg, name) < 1:
            raise InputError(f"diffusion training: {name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.images is not None and cfg.images < 1:
        raise InputError(f"diffusion training: images must be >= 1 (or None for all), got {cfg.images}")
    if not (cfg.lr > 0 and cfg.grad_clip > 0 and cfg.warmup >= 0 and 0 <= cfg.ema < 1):
        raise InputError(f"diffusion training: need lr > 0, grad_clip > 0, warmup >= 0 and 0 <= ema < 1, got "
                         f"lr={cfg.lr}, grad_clip={cfg.grad_clip}, warmup={cfg.warmup}, ema={cfg.ema}")


def _model(cfg: DiffusionConfig) -> ScoreUNet:
    return ScoreUNet(cfg.channels, tuple(cfg.mults), cfg.blocks, cfg.dropout)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay ema + (1 - decay) model, parameter by parameter."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)


@torch.no_grad()
def validation_loss(model: ScoreUNet, sde: VPSDE, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                    batch_size: int) -> float:
    """Mean ε-MSE over the validation images (fixed ``t`` and ``noise``), in batches, in eval mode."""
    was_training = model.training
    model.eval()
    total = sum(float(denoising_loss(model, sde, x0[i:i + batch_size], t[i:i + batch_size],
                                     noise[i:i + batch_size])) * len(x0[i:i + batch_size])
                for i in range(0, len(x0), batch_size))
    model.train(was_training)
    return total / len(x0)


def train_diffusion(cfg: DiffusionConfig, out: str | Path, data_root=None, device=None,
                    command: list[str] | None = None, progress: bool = True) -> Path:
    """Train the score U-Net, checkpointing at every evaluation (resumes from ``out/checkpoint.pt``); returns
    ``out/diffpure.safetensors`` (the EMA weights; ``load_defense("diffpure", weights=...)`` rebuilds it)."""
    check_config(cfg)
    dev = resolve_device(device)
    run = RunDir(out, command)
    seed_everything(cfg.seed)
    splits = [load_dataset(cfg.dataset, split, root=data_root, val_size=cfg.val_size) for split in ("train", "val")]
    if not all(isinstance(ds, ImageDataset) for ds in splits):
        raise InputError("diffusion training needs an in-memory dataset (CIFAR .npz or torchvision folders)")
    pool = torch.from_numpy(splits[0].images[:cfg.images]).permute(0, 3, 1, 2).contiguous()
    sde, model = VPSDE(), _model(cfg)
    model.check_input(pool[:1])  # H, W divisible by the U-Net's downsampling
    val_gen = torch.Generator().manual_seed(cfg.seed + 1)
    x_val = to_model_range(splits[1].tensors(cfg.val_images)[0]).to(dev)
    t_val = torch.linspace(cfg.t_min, cfg.t_max, len(x_val)).to(dev)
    noise_val = torch.randn(x_val.shape, generator=val_gen).to(dev)

    pair = ScoreAndEMA(model).to(dev)
    model, ema = pair.model, pair.ema
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def loss_fn(step: Step) -> torch.Tensor:
        gen = step.generator
        idx = torch.randint(0, pool.shape[0], (cfg.batch_size,), generator=gen)
        x0 = to_model_range(random_crop_flip(from_uint8(pool[idx], channels_last=False), pad=0, generator=gen))
        t = cfg.t_min + (cfg.t_max - cfg.t_min) * torch.rand(cfg.batch_size, generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        return denoising_loss(model, sde, x0.to(dev), t.to(dev), noise.to(dev))

    def validate() -> dict[str, float]:
        return {"val_loss": round(validation_loss(ema, sde, x_val, t_val, noise_val, cfg.batch_size), 5),
                "val_loss_raw": round(validation_loss(model, sde, x_val, t_val, noise_val, cfg.batch_size), 5)}

    def start() -> dict[str, float]:
        return {"device": str(dev), "train_images": int(pool.shape[0]),
                "parameters": sum(p.numel() for p in model.parameters()),
                "val_loss": round(validation_loss(model, sde, x_val, t_val, noise_val, cfg.batch_size), 5)}

    done = train_steps(run, cfg, pair, opt, pool.shape[0], loss_fn, validate, "loss", "diffusion score model",
                       progress, start, steps=cfg.steps, upgrade_checkpoint=_from_older_loop, checkpoint_every=cfg.eval_every, val_every=cfg.eval_every,
                       lr_at=lambda step, total: cfg.lr * min(1.0, (step + 1) / max(cfg.warmup, 1)),
                       after_backward=lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip),
                       after_step=lambda step: update_ema(ema, model, min(cfg.ema, (1 + step) / (10 + step))))

    weights_path = run.path / "diffpure.safetensors"
    save_weights(ema.state_dict(), weights_path, {
        "kind": "defense", "arch": "diffpure", "dataset": cfg.dataset,
        "spec": {"name": "score-unet", "args": ema.architecture()},
        "paper": "Nie et al., Diffusion Models for Adversarial Purification, ICML 2022 (ε-prediction U-Net score "
                 "model, VP-SDE of Song et al., ICLR 2021)",
        "architecture": ema.architecture(), "sde": {"beta_min": sde.beta_min, "beta_max": sde.beta_max},
        "settings": {"t_min": cfg.t_min, "t_max": cfg.t_max, "ema": cfg.ema, "steps": done["steps_done"]},
        "val_loss": done.get("val_loss"), "config": asdict(cfg), "command": run.command, "device": str(dev),
    })
    run.log({"event": "done", "weights": str(weights_path)})
    return weights_path


class ScoreAndEMA(torch.nn.Module):
    """What the run trains and checkpoints: the score U-Net and its exponential moving average (the saved weights;
    not optimised, updated after every step)."""

    def __init__(self, model: ScoreUNet) -> None:
        super().__init__()
        self.model, self.ema = model, copy.deepcopy(model).requires_grad_(False)


def _from_older_loop(ckpt: dict) -> dict:
    """Diffusion training's checkpoints from before it shared ``train_steps`` held the ``model`` and ``ema`` state
    dicts side by side."""
    if "ema" not in ckpt:
        return ckpt
    return from_older_loop(ckpt, {**{f"model.{k}": v for k, v in ckpt["model"].items()},
                                  **{f"ema.{k}": v for k, v in ckpt["ema"].items()}})
