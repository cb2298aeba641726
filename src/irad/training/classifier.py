"""``irad train classifier``: a standard supervised recipe with checkpoints, resume and a safetensors result.

Recipe: random crop (pad 4, reflect) + horizontal flip, SGD with Nesterov momentum, weight decay, label smoothing,
a one-cycle learning rate (linear warm-up, then linear decay to 0), evaluation on the held-out validation split
after every epoch. ``fastnet`` keeps its data-initialised whitening stem frozen.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import distributed
from ..classifiers import CLASSIFIERS, build_classifier
from ..data import ImageDataset, dataset_info, from_uint8, load_dataset
from ..errors import InputError
from ..utils import resolve_device, seed_everything
from ..weights import save_weights
from ..utils.validation import is_whole
from .augment import random_crop_flip
from .loop import batch_share, require_positive, wrap_for_training
from .rundir import RunDir


@dataclass
class ClassifierRecipe:
    arch: str = "fastnet"
    dataset: str = "cifar10"
    epochs: int = 8
    batch_size: int = 512
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    warmup_fraction: float = 0.2
    train_limit: int | None = None  # use only the first N training images (smoke tests, CPU budgets)
    val_size: int = 5000
    seed: int = 0


@torch.inference_mode()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500,
             device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy of ``model`` on (x, y), evaluated in batches."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += (model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum().item()
    return correct / max(1, len(x))


def _lr_at(step: int, total: int, recipe: ClassifierRecipe) -> float:
    warm = max(1, int(recipe.warmup_fraction * total))
    if step < warm:
        return recipe.lr * (step + 1) / warm
    return recipe.lr * max(0.0, (total - step) / max(1, total - warm))


def check_recipe(recipe: ClassifierRecipe) -> None:
    """Refuse, before anything is written, a recipe that would not train: epochs (an integer) and batch size must
    be >= 1, the peak learning rate a positive finite number, momentum and weight decay >= 0."""
    for name in ("epochs", "batch_size"):
        value = getattr(recipe, name)
        if not is_whole(value, 1):
            raise InputError(f"classifier training: {name} must be an integer >= 1, got {value!r}")
    require_positive("classifier training", "lr", recipe.lr)
    for name in ("momentum", "weight_decay"):
        if not (math.isfinite(getattr(recipe, name)) and getattr(recipe, name) >= 0):
            raise InputError(f"classifier training: {name} must be >= 0, got {getattr(recipe, name)!r}")


def train_classifier(recipe: ClassifierRecipe, out: str | Path, data_root=None, device=None,
                     command: list[str] | None = None, progress: bool = True) -> Path:
    """Train, checkpointing after every epoch (resumes from ``out/checkpoint.pt``); returns the weight file.

    Under torchrun ``recipe.batch_size`` is the global batch, split across the processes (gradients all-reduced by
    DistributedDataParallel). Batch norm becomes SyncBatchNorm on GPUs (statistics of the whole batch, as in one
    process); on CPUs, where SyncBatchNorm does not run, each process normalises with its share's statistics."""
    check_recipe(recipe)
    group, dev = distributed.setup(resolve_device(device))
    if recipe.batch_size < group.world_size:
        raise InputError(f"classifier training: the batch of {recipe.batch_size} is smaller than the "
                         f"{group.world_size} processes it is split across; pass a larger --batch-size")
    run = RunDir(out, command)
    gen = seed_everything(recipe.seed)
    train = load_dataset(recipe.dataset, "train", root=data_root, val_size=recipe.val_size)
    val = load_dataset(recipe.dataset, "val", root=data_root, val_size=recipe.val_size)
    if not isinstance(train, ImageDataset):
        raise InputError("classifier training needs an in-memory dataset (CIFAR .npz or torchvision folders)")
    if recipe.train_limit:
        train = train.subset(slice(0, recipe.train_limit))
    xv, yv = val.tensors()

    # a user's folder has as many classes as it has class folders; registered datasets know their count
    num_classes = dataset_info(recipe.dataset).num_classes or int(max(train.labels.max(), yv.max())) + 1
    arch = CLASSIFIERS.get(recipe.arch).name  # the registry's spelling (names are case-insensitive)
    model = build_classifier(arch, recipe.dataset, num_classes=num_classes).to(dev)
    if dev.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    if arch == "fastnet":
        xs, _ = train.tensors(5000)
        model.net.init_whitening(((xs - model.mean.cpu()) / model.std.cpu()).to(dev))
        model.net.whiten.weight.requires_grad_(False)
    batch_norm = None
    if group.active:
        if dev.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            batch_norm = "SyncBatchNorm: statistics of the whole batch"
        else:
            batch_norm = "per process: each normalises with its share's statistics (SyncBatchNorm needs GPUs)"
    net = wrap_for_training(model, group)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() > 1]
    no_decay = [p for p in params if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": recipe.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=recipe.lr, momentum=recipe.momentum, nesterov=True)
    steps_per_epoch = math.ceil(len(train) / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    start_epoch, history = 0, []
    ckpt = run.load_checkpoint()
    if ckpt is not None:
        if ckpt["recipe"] != asdict(recipe):
            raise InputError(f"{run.checkpoint_path} was made with another recipe ({ckpt['recipe']}); use a new "
                             f"--out folder or delete the checkpoint to start over")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["generator"])
        start_epoch, history = ckpt["epoch"], ckpt["history"]
        run.log({"event": "resume", "epoch": start_epoch})
    else:
        run.log({"event": "start", **asdict(recipe), "device": str(dev), "train_images": len(train),
                 **({"distributed": {**group.describe(), "global_batch": recipe.batch_size,
                                     "batch_norm": batch_norm}} if group.active else {})})

    for epoch in range(start_epoch, recipe.epochs):
        model.train()
        t0 = time.time()
        order = torch.randperm(len(train), generator=gen)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{recipe.epochs}",
                   disable=not (progress and group.is_main), leave=False)
        loss_sum = 0.0
        for i in bar:
            step = epoch * steps_per_epoch + i
            for param_group in opt.param_groups:
                param_group["lr"] = _lr_at(step, total, recipe)
            idx = order[i * recipe.batch_size:(i + 1) * recipe.batch_size].numpy()
            x = from_uint8(train.images[idx])
            x = random_crop_flip(x, generator=gen)  # drawn for the whole batch, then this process's share kept
            share, weight = batch_share(len(idx), group)
            x = x[share].to(dev)
            if dev.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(train.labels[idx][share]).to(dev)
            loss = F.cross_entropy(net(x), y, label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            (loss * weight).backward()
            opt.step()
            batch_loss = float(group.all_sum([loss.item() * weight])[0]) / group.world_size
            loss_sum += batch_loss
            bar.set_postfix(loss=f"{batch_loss:.3f}")
        val_acc = accuracy(model, xv, yv, device=dev) if group.is_main else None
        record = {"epoch": epoch + 1, "train_loss": loss_sum / steps_per_epoch, "val_acc": val_acc,
                  "epoch_seconds": round(time.time() - t0, 1)}
        history.append(record)
        run.log(record)
        run.save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                             "generator": gen.get_state(), "history": history, "recipe": asdict(recipe)})

    weights_path = run.path / f"{arch}-{recipe.dataset}.safetensors"
    if not group.is_main:
        group.barrier()  # rank 0 writes the weights
        return weights_path
    # (SyncBatchNorm's tensors carry BatchNorm2d's names: the file loads into the plain architecture)
    save_weights(model.net.state_dict(), weights_path, {
        "kind": "classifier", "arch": arch, "dataset": recipe.dataset,
        "spec": {"name": arch, "args": {"num_classes": num_classes}}, "num_classes": num_classes,
        "mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist(),
        "val_accuracy": history[-1]["val_acc"] if history else None, "recipe": asdict(recipe),
        "command": run.command, "device": str(dev),
        **({"distributed": {**group.describe(), "batch_norm": batch_norm}} if group.active else {}),
    })
    run.log({"event": "done", "weights": str(weights_path)})
    group.barrier()
    return weights_path
