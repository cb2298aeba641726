"""``irad train implicit``: train FEAT and φ (Eq. 9) on one of the five tasks with L1 (§4.2, A.1).

Default recipe: the winner of the CPU recipe study at equal training time (docs/training/irad-campaign/): random
16 x 16 patches with every pixel queried, the residual output φ = bilinear(I) + correction, Adam (lr 5e-4, betas
(0.9, 0.999)), batch 32. The paper's settings (whole images, plain LIIF output, Adam lr 1e-4 betas (0, 0.9), batch
128) are ``crop=None, residual=False, lr=1e-4, betas=(0, 0.9), batch_size=128`` (``--crop 0 --no-residual --lr 1e-4
--betas 0,0.9 --batch-size 128``). The run folder gets a resumable checkpoint (every ``checkpoint_every`` steps and
at each validation), ``log.jsonl`` with training loss and validation PSNR, and ``implicit-TASK.safetensors`` (its metadata: spec, task,
command, sha256), written at every validation and at the end.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import distributed
from ..data import ImageDataset, from_uint8, load_dataset
from ..errors import DataError, InputError
from ..metrics import psnr
from ..reconstruction import ImplicitReconstruction
from ..utils import resolve_device, seed_everything
from ..weights import save_weights, weights_digest
from .augment import random_crops
from .pairs import AdversarialPairs, check_pair_splits
from .loop import Step, check_schedule, cosine_lr, minutes_to_seconds, train_steps
from .rundir import RunDir
from .tasks import TASKS, Task, TaskBatch, sample_queries, take


LR_SCHEDULES = ("constant", "cosine")


@dataclass
class ImplicitConfig:
    task: str = "adversarial-denoising"
    dataset: str = "cifar10"
    pairs: str | list[str] | None = None  # folder(s) of training pairs (adversarial denoising), used together
    val_pairs: str | list[str] | None = None  # folder(s) of validation pairs; the first gives val_psnr
    epochs: float = 1.0  # fractional epochs allowed (CPU budgets)
    batch_size: int = 32
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: str = "constant"  # or "cosine": decay to 1 % of lr over the planned steps
    queries: int | None = None  # target pixels per image; None = all (the paper)
    crop: int | None = 16  # train on random crop x crop patches (all their pixels queried); None = whole images
    residual: bool = True  # predict a correction added to the (bilinear) input; False = plain LIIF (the paper)
    n_resblocks: int = 16
    n_feats: int = 64
    hidden: list[int] = field(default_factory=lambda: [256, 256, 256, 256])
    train_limit: int | None = None
    val_size: int = 5000
    val_images: int = 500
    checkpoint_every: int = 50
    val_every: int | None = None  # validate every k steps as well as at each epoch end
    amp: bool = False  # bf16 autocast (GPU recipe); fp32 otherwise
    init: str | None = None  # warm start: an implicit/IRAD weight file whose reconstruction.* tensors start φ
    seed: int = 0

    #: what runs made before a setting existed did (checkpoints written then lack it): whole images, plain LIIF
    LEGACY_VALUES = {"crop": None, "residual": False, "lr_schedule": "constant", "val_every": None}


def as_folders(pairs: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``--pairs`` / ``--val-pairs`` as a list of folders (one folder may be given as a plain string)."""
    if pairs is None:
        return []
    return [pairs] if isinstance(pairs, (str, Path)) else [str(p) for p in pairs]


class _Source:
    """Clean (and adversarial) training images, from pair folders (concatenated) or from a dataset split."""

    def __init__(self, pairs: str | list[str] | None, dataset: str, split: str, data_root, val_size: int,
                 limit: int | None):
        folders = as_folders(pairs)
        self.pairs = [AdversarialPairs(f, data_root) for f in folders]
        if not self.pairs:
            ds = load_dataset(dataset, split, root=data_root, val_size=val_size)
            if not isinstance(ds, ImageDataset):
                raise DataError("implicit training needs an in-memory dataset (.npz or torchvision CIFAR folders)")
            self.ds = ds
        if self.pairs:
            self.clean = np.concatenate([p.clean for p in self.pairs])
            self.adv = np.concatenate([p.adv for p in self.pairs])
        else:
            self.clean, self.adv = self.ds.images, None
        n = len(self.clean)
        self.n = n if limit is None else min(n, limit)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        return from_uint8(self.clean[idx]), None if self.adv is None else from_uint8(self.adv[idx])


def l1_on_batch(model: torch.nn.Module, batch: TaskBatch) -> torch.Tensor:
    pred = model(batch.inputs).query(batch.coords, batch.cell)
    return F.l1_loss(pred, batch.targets)


@torch.no_grad()
def validation_psnr(model: ImplicitReconstruction, task, source: _Source, n: int, device) -> dict[str, float]:
    """Mean PSNR (dB) of φ's output against the target, and of the task's input against the target (same size)."""
    model.eval()
    gen = torch.Generator().manual_seed(1234)
    out_sum, in_sum, count, same_size = 0.0, 0.0, 0, True
    for start in range(0, min(n, source.n), 250):
        idx = np.arange(start, min(start + 250, n, source.n))
        clean, adv = source.batch(idx)
        b = task(clean.to(device), None if adv is None else adv.to(device), gen)
        pred = model(b.inputs).query(b.coords, b.cell).clamp(0, 1)
        out_sum += psnr(pred, b.targets).sum().item()
        same_size = same_size and b.inputs.shape == b.targets.shape
        if same_size:
            in_sum += psnr(b.inputs, b.targets).sum().item()
        count += len(idx)
    model.train()
    return {"val_psnr": out_sum / count, "val_input_psnr": in_sum / count if same_size else float("nan")}


def validate_all(model: ImplicitReconstruction, task, sources: list[tuple[str, _Source]], n: int,
                 device) -> dict[str, float]:
    """:func:`validation_psnr` on the first validation source as ``val_psnr`` / ``val_input_psnr``, and on each
    further one (pairs of other surrogates) as ``val_psnr@NAME`` / ``val_input_psnr@NAME``."""
    out: dict[str, float] = {}
    for i, (name, source) in enumerate(sources):
        scores = validation_psnr(model, task, source, n, device)
        out.update(scores if i == 0 else {f"{k}@{name}": v for k, v in scores.items()})
    return out


def check_pair_options(cfg: ImplicitConfig, task: Task) -> None:
    """A task on adversarial pairs (§4.2: adversarial denoising) needs --pairs and --val-pairs from disjoint splits
    (:func:`~irad.training.pairs.check_pair_splits`); any other task refuses them rather than ignore them."""
    given = [opt for opt, value in (("--pairs", cfg.pairs), ("--val-pairs", cfg.val_pairs)) if value]
    if not task.needs_pairs:
        if given:
            raise InputError(f"task {cfg.task!r} does not use adversarial pairs, but {' and '.join(given)} "
                             f"{'was' if len(given) == 1 else 'were'} given; drop {' and '.join(given)}, or train "
                             f"--task adversarial-denoising (the paper's task), which uses them")
        return
    if not cfg.pairs:
        raise InputError(f"task {cfg.task!r} needs --pairs DIR (make them with `irad train pairs`)")
    if not cfg.val_pairs:
        raise InputError("adversarial denoising needs --val-pairs DIR (pairs crafted on the val split)")
    for train_folder in as_folders(cfg.pairs):
        for val_folder in as_folders(cfg.val_pairs):
            check_pair_splits(train_folder, val_folder, cfg.dataset)


def train_implicit(cfg: ImplicitConfig, out: str | Path, data_root=None, device=None, command: list[str] | None = None,
                   progress: bool = True, time_limit_min: float | None = None) -> Path:
    check_schedule(cfg, "implicit training")  # settings are checked before the run folder is made
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise InputError(f"unknown learning-rate schedule {cfg.lr_schedule!r}; use one of {', '.join(LR_SCHEDULES)}")
    time_limit_s = minutes_to_seconds(time_limit_min)
    task = TASKS.build(cfg.task)
    check_pair_options(cfg, task)
    group, dev = distributed.setup(resolve_device(device))
    run = RunDir(out, command)
    seed_everything(cfg.seed)
    train = _Source(cfg.pairs, cfg.dataset, "train", data_root, cfg.val_size, cfg.train_limit)
    crop = cfg.crop
    if crop is not None and crop >= min(train.clean.shape[1:3]):
        h, w = train.clean.shape[1:3]
        note = f"crop {crop} does not fit inside the {h} x {w} training images: training on whole images"
        warnings.warn(note + " (pass --crop 0 to say so, or a smaller --crop)", stacklevel=2)
        crop = None
    val_folders = as_folders(cfg.val_pairs)
    vals = ([(Path(f).name, _Source(f, cfg.dataset, "val", data_root, cfg.val_size, cfg.val_images))
             for f in val_folders] if val_folders else
            [("val", _Source(None, cfg.dataset, "val", data_root, cfg.val_size, cfg.val_images))])

    model = ImplicitReconstruction(cfg.n_resblocks, cfg.n_feats, tuple(cfg.hidden), cfg.residual).to(dev)
    start_record = {"device": str(dev), "train_images": train.n}
    if crop != cfg.crop:
        start_record["note"] = note
    if cfg.init:
        start_record["init_sha256"] = warm_start(model, cfg.init)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))

    def loss_fn(step: Step) -> torch.Tensor:
        # every random draw is made for the whole batch (the same on every process), then this share is kept
        gen = step.generator
        clean, adv = train.batch(step.indices)
        if torch.rand((), generator=gen) < 0.5:  # horizontal flip, the same for the pair
            clean, adv = clean.flip(-1), None if adv is None else adv.flip(-1)
        if crop is not None:
            clean, adv = random_crops([clean, adv], crop, gen)
        batch = task(clean.to(dev), None if adv is None else adv.to(dev), gen)
        batch = take(sample_queries(batch, cfg.queries, gen), step.share)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.amp):
            return l1_on_batch(step.net, batch)

    path = run.path / f"implicit-{cfg.task}.safetensors"

    def export(progress: dict) -> None:
        save_resampler_weights(model, None, path, {"task": cfg.task, "dataset": cfg.dataset, "implicit_config":
                                                   asdict(cfg), "command": run.command, "device": str(dev),
                                                   **progress})

    done = train_steps(run, cfg, model, opt, train.n, loss_fn,
                       lambda: validate_all(model, task, vals, cfg.val_images, dev), "train_l1",
                       f"implicit/{cfg.task}", progress, start_record, time_limit_s,
                       export=export, lr_at=cosine_lr(cfg.lr) if cfg.lr_schedule == "cosine" else None)
    if group.is_main:
        export(done)
    run.log({"event": "done", "weights": str(path)})
    group.barrier()  # every process returns once the weights are on disk
    return path


def warm_start(model: ImplicitReconstruction, path: str) -> str:
    """Load the ``reconstruction.*`` tensors of an implicit or IRAD weight file into ``model``; return its sha256."""
    from ..defenses.resampling import load_irad_parts

    recon, _, meta = load_irad_parts(path)
    if recon.config != model.config:
        raise InputError(f"--init {path} holds an implicit representation with {recon.config}, but this run builds "
                         f"{model.config}; match --encoder-blocks/--features/--residual or --no-residual, or drop --init")
    model.load_state_dict(recon.state_dict())
    return str(meta.get("sha256") or weights_digest(path))


def save_resampler_weights(recon: ImplicitReconstruction, samplenet, path: Path, meta: dict) -> str:
    """One file for an IRAD defense: ``reconstruction.*`` (+ ``sampler.*``) tensors, and the spec in its metadata."""
    state = {f"reconstruction.{k}": v for k, v in recon.state_dict().items()}
    spec = {"reconstruction": {"name": "implicit", "args": recon.config}}
    if samplenet is not None:
        state.update({f"sampler.{k}": v for k, v in samplenet.state_dict().items() if not k.startswith("encoder.")})
        spec["sampler"] = {"name": "samplenet", "args": samplenet.config}
    else:
        spec["sampler"] = {"name": "identity"}
    return save_weights(state, path, {"kind": "defense", "arch": "irad", "spec": spec, **meta})
