"""The step loop shared by the implicit-representation and SampleNet trainers: resumable, seeded per step."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from .. import distributed
from ..errors import InputError
from ..utils.validation import is_real
from ..weights import read_meta
from .rundir import RunDir


@dataclass(frozen=True)
class Step:
    """What a trainer's loss function gets for one step.

    ``indices`` is the whole (global) batch (None in a run of ``steps``, whose loss draws its own batch from
    ``generator``) and ``generator`` is seeded by (seed, step): draw every random
    augmentation for the whole batch, then keep ``share`` (this process's contiguous part; all of it in one
    process) and run ``net`` (the trained module, wrapped in DistributedDataParallel under torchrun: call it, not
    the bare module) on that part only. The loss returned is the mean over the share; :func:`train_steps` weighs
    the shares so that the all-reduced gradient is the one of the whole batch's mean, whatever the number of
    processes.
    """

    indices: np.ndarray | None
    generator: torch.Generator
    share: slice
    net: torch.nn.Module


def train_steps(run: RunDir, cfg: Any, module: torch.nn.Module, opt: torch.optim.Optimizer, n_items: int,
                loss_fn: Callable[[Step], torch.Tensor],
                validate: Callable[[], dict[str, float]], loss_name: str, desc: str, progress: bool = True,
                start_record: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
                time_limit_s: float | None = None,
                export: Callable[[dict[str, Any]], None] | None = None,
                lr_at: Callable[[int, int], float] | None = None,
                forward: torch.nn.Module | None = None, *, steps: int | None = None,
                checkpoint_every: int | None = None, val_every: int | None = None,
                after_backward: Callable[[], None] | None = None,
                after_step: Callable[[int], None] | None = None,
                upgrade_checkpoint: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Optimise ``module`` for ``cfg.epochs`` epochs (fractional allowed) of ``n_items`` in batches of
    ``cfg.batch_size``; return ``{"steps_done", "steps_planned", "images_seen", "train_s"}`` and the figures of
    the run's last validation (kept in the checkpoint), the progress its weights' metadata records.

    Under torchrun (:mod:`irad.distributed`) ``cfg.batch_size`` is the global batch: each process computes the loss
    on its share of it and DistributedDataParallel all-reduces the gradients, so N processes take the steps one
    process would (equal weights up to float rounding); only rank 0 validates, logs, checkpoints and exports.

    ``loss_fn(step)`` returns the loss of a :class:`Step`; its generator is seeded by (seed, step), the order by
    (seed, epoch) and torch's global generators by (seed, step) (:func:`step_rng`), so a run resumed from ``run``'s
    checkpoint continues exactly as if it had not stopped. A checkpoint is written every ``cfg.checkpoint_every``
    steps and at each epoch end, where ``validate()`` runs.
    ``time_limit_s`` (wall clock, this call only) ends the run early but cleanly: it validates, checkpoints and
    logs a ``time-limit`` event, so the caller can export the weights and the same command later continues the run.
    ``cfg.val_every`` (optional, steps) validates more often than once an epoch, at a checkpoint. Every record logs
    ``images_seen`` and ``train_s``: seconds spent in training steps so far (validation and checkpoints excluded,
    summed over resumed runs), the x-axis on which recipes of different speed compare at equal compute.
    ``export(progress)``, if given, runs after each validation with ``{"steps_done", "steps_planned",
    "images_seen", "train_s", **validation}``: the trainer writes the weights so far (partial until the last step),
    which can be evaluated, or carried to another machine, while a long run goes on.
    ``lr_at(step, total_steps)``, if given, sets every parameter group's learning rate before each step (a schedule
    that is a function of the step alone, so resuming needs no scheduler state).
    ``forward``, if given, is the module the loss calls (``Step.net``; e.g. the whole defense around a trained
    part), whose trainable parameters are ``module``'s; ``module`` alone is checkpointed and optimised.

    ``steps`` makes it a run of that many steps instead of epochs over ``n_items`` (``Step.indices`` is None: the
    loss draws its batch from the step's generator, e.g. random crops of a pool; validation every ``val_every``
    steps and at the last one). ``checkpoint_every`` / ``val_every`` override ``cfg``'s. ``after_backward()`` runs
    between the backward pass and the optimiser step (gradient clipping); ``after_step(step)`` after every optimiser
    step, with the index of the step just taken (a projection, an EMA). ``loss_fn`` may return
    ``(loss, {name: value})``: the values' means since the last record are logged beside the loss.
    ``start_record`` may be a function, called only when the run starts afresh (e.g. a first validation).
    ``upgrade_checkpoint(ckpt)`` maps a checkpoint as loaded to this loop's layout (see :func:`from_older_loop`).
    """
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
    group = distributed.current()
    if cfg.batch_size < group.world_size:
        raise InputError(f"the batch of {cfg.batch_size} is smaller than the {group.world_size} processes it is split "
                         f"across; pass --batch-size >= {group.world_size} (it is the global batch)")
    net = wrap_for_training(module if forward is None else forward, group)
    if steps is None:
        steps_per_epoch = math.ceil(n_items / cfg.batch_size)
        total_steps = max(1, round(cfg.epochs * steps_per_epoch))
    else:  # one "epoch" of all the steps, each drawing its own batch
        steps_per_epoch = total_steps = steps
        n_items = steps * cfg.batch_size
    checkpoint_every = checkpoint_every or cfg.checkpoint_every
    step, train_s, last_validation = 0, 0.0, {}
    val_every = val_every or getattr(cfg, "val_every", None)
    ckpt = run.load_checkpoint()
    if ckpt is not None and upgrade_checkpoint is not None:
        ckpt = upgrade_checkpoint(ckpt)
    if ckpt is not None:
        changed = _changed_settings(ckpt["config"], cfg)
        if changed:
            raise InputError(f"{run.checkpoint_path} was made with other settings ({', '.join(changed)}); "
                             "use a new --out folder or the original settings")
        module.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, train_s = ckpt["step"], ckpt.get("train_seconds", 0.0)
        last_validation = dict(ckpt.get("validation", {}))
        run.log({"event": "resume", "step": step, "steps_planned": total_steps,
                 **({"note": "already complete: nothing to train, the weights are exported again"}
                    if step >= total_steps else {})})
    else:
        start = start_record() if callable(start_record) else start_record
        run.log({"event": "start", **asdict(cfg), **(start or {}), "total_steps": total_steps,
                 **({"distributed": {**group.describe(), "global_batch": cfg.batch_size,
                                     "per_process_batch": -(-cfg.batch_size // group.world_size)}}
                    if group.active else {})})
    bar = tqdm(total=total_steps, initial=step, desc=desc, disable=not (progress and group.is_main))
    loss_acc, n_acc, t0 = 0.0, 0, time.time()
    metric_sums: dict[str, float] = {}
    module.train()
    while step < total_steps:
        if steps is None:
            epoch, pos = divmod(step, steps_per_epoch)
            order = torch.randperm(n_items, generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
            idx = order.numpy()[pos * cfg.batch_size:(pos + 1) * cfg.batch_size]
            share, weight = batch_share(len(idx), group)
        else:
            idx = None
            share, weight = batch_share(cfg.batch_size, group)
        t_step = time.perf_counter()
        if lr_at is not None:
            for param_group in opt.param_groups:
                param_group["lr"] = lr_at(step, total_steps)
        with step_rng(cfg.seed, step, _param_device(module)):
            loss = loss_fn(Step(idx, torch.Generator().manual_seed(cfg.seed * 1_000_003 + step), share, net))
            if isinstance(loss, tuple):
                loss, metrics = loss
                for name, value in metrics.items():
                    metric_sums[name] = metric_sums.get(name, 0.0) + float(value)
            opt.zero_grad(set_to_none=True)
            (loss * weight).backward()
            if after_backward is not None:
                after_backward()
            opt.step()
            if after_step is not None:
                after_step(step)
        step += 1
        train_s += time.perf_counter() - t_step
        batch_loss = float(group.all_sum([loss.item() * weight])[0]) / group.world_size  # the whole batch's mean
        loss_acc, n_acc = loss_acc + batch_loss, n_acc + 1
        bar.update(1)
        bar.set_postfix(loss=f"{batch_loss:.4f}")
        end_of_epoch = step % steps_per_epoch == 0 or step == total_steps
        out_of_time = deadline is not None and time.monotonic() >= deadline and step < total_steps
        if group.active and deadline is not None:  # all processes stop at the same step
            out_of_time = group.any(out_of_time)
        validate_now = end_of_epoch or out_of_time or bool(val_every and step % val_every == 0)
        if step % checkpoint_every == 0 or validate_now:
            record = {"step": step, "epoch": round(step / steps_per_epoch, 3), loss_name: loss_acc / n_acc,
                      **{name: total / n_acc for name, total in metric_sums.items()},
                      "images_per_s": round(n_acc * cfg.batch_size / (time.time() - t0), 2),
                      "images_seen": images_seen(step, steps_per_epoch, n_items, cfg.batch_size), "train_s": round(train_s, 3)}
            if validate_now and group.is_main:
                record.update(validate())
                module.train()
                last_validation = {k: v for k, v in record.items() if k.startswith("val")}
            run.log(record)
            run.save_checkpoint({"model": module.state_dict(), "optimizer": opt.state_dict(), "step": step,
                                 "config": asdict(cfg), "train_seconds": train_s, "validation": last_validation})
            if validate_now and export is not None and step < total_steps and group.is_main:  # (final: the caller)
                export({"steps_done": step, "steps_planned": total_steps, "images_seen": record["images_seen"],
                        "train_s": record["train_s"], **{k: v for k, v in record.items() if k.startswith("val")}})
            loss_acc, n_acc, t0 = 0.0, 0, time.time()
            metric_sums = {}
        if out_of_time:
            run.log({"event": "time-limit", "step": step, "steps_planned": total_steps,
                     "note": "stopped early; the same command continues from the checkpoint"})
            break
    bar.close()
    return {"steps_done": step, "steps_planned": total_steps,
            "images_seen": images_seen(step, steps_per_epoch, n_items, cfg.batch_size), "train_s": round(train_s, 3),
            **last_validation}


def from_older_loop(ckpt: dict[str, Any], model_state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A checkpoint written by a trainer's own loop before it shared :func:`train_steps` (its ``optimizer``,
    ``step``, ``config`` and ``history`` of records), with ``model_state`` its trained module's state, in the
    layout :func:`train_steps` resumes from: a run killed under the older version continues."""
    last = (ckpt.get("history") or [{}])[-1]
    return {"model": model_state, "optimizer": ckpt["optimizer"], "step": ckpt["step"], "config": ckpt["config"],
            "train_seconds": 0.0, "validation": {k: v for k, v in last.items() if k.startswith("val")}}


def wrap_for_training(module: torch.nn.Module, group: distributed.Context) -> torch.nn.Module:
    """``module`` itself in one process; under torchrun, wrapped in DistributedDataParallel (which broadcasts rank
    0's parameters, so every process starts from the same weights, and all-reduces the gradients)."""
    if not group.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    dev = _param_device(module)
    return DistributedDataParallel(module, device_ids=[dev] if dev.type == "cuda" else None)


def batch_share(batch: int, group: distributed.Context) -> tuple[slice, float]:
    """This process's part of a batch of ``batch`` items and the weight of its mean loss: share / batch x world,
    so that DistributedDataParallel's average of the weighted gradients is the gradient of the batch's mean. A
    process left without items (a last batch smaller than the world) runs its forward on one item with weight 0:
    every process must take part in each all-reduce."""
    share = group.share(batch)
    n = share.stop - share.start
    if n == 0:
        return slice(batch - 1, batch), 0.0
    return share, n * group.world_size / batch


def cosine_lr(peak: float, final_fraction: float = 0.01) -> Callable[[int, int], float]:
    """Cosine decay from ``peak`` at step 0 to ``final_fraction * peak`` at the last step (Loshchilov & Hutter
    2017, without restarts)."""

    def lr_at(step: int, total: int) -> float:
        t = step / max(1, total - 1)
        return peak * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

    return lr_at


def images_seen(step: int, steps_per_epoch: int, n_items: int, batch_size: int) -> int:
    """Items presented in the first ``step`` steps (each epoch's last batch may be short)."""
    epochs, pos = divmod(step, steps_per_epoch)
    return epochs * n_items + min(pos * batch_size, n_items)


@contextlib.contextmanager
def step_rng(seed: int, step: int, device: torch.device) -> Iterator[None]:
    """Run one training step with torch's global generators (CPU and ``device``'s; dropout masks and anything else
    drawn without an explicit generator) seeded from (``seed``, ``step``), and restore them afterwards. Checkpoints
    need not hold the generators' state then: a resumed run draws what an uninterrupted one draws."""
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(np.random.SeedSequence([seed % 2**63, step]).generate_state(1, np.uint64)[0]))
        yield


def _param_device(module: torch.nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return torch.device("cpu") if param is None else param.device


def check_schedule(cfg: Any, what: str) -> None:
    """Refuse, before anything is written, what would not train: ``cfg.epochs`` and ``cfg.lr`` must be positive
    finite numbers (0 epochs would still run one step, NaN crash), Adam's ``cfg.betas`` lie in [0, 1), and
    ``cfg.batch_size`` / ``cfg.checkpoint_every`` be at least 1."""
    for name in ("epochs", "lr"):
        require_positive(what, name, getattr(cfg, name))
    betas = tuple(cfg.betas)
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise InputError(f"{what}: Adam's betas must be two numbers in [0, 1), got {betas}")
    for name in ("batch_size", "checkpoint_every", "val_every"):
        if getattr(cfg, name, None) is not None and getattr(cfg, name) < 1:
            raise InputError(f"{what}: {name} must be >= 1, got {getattr(cfg, name)}")


def require_positive(what: str, name: str, value: object) -> None:
    """Refuse a setting ``name`` (a command-line option --name) that is not a positive finite number."""
    if not (is_real(value) and value > 0):
        raise InputError(f"{what}: {name} must be a positive, finite number, got {value!r}; pass a positive "
                         f"--{name}")


def minutes_to_seconds(minutes: float | None) -> float | None:
    """A ``--time-limit`` in minutes as seconds (None = no limit); refuses what is not a positive finite number."""
    if minutes is None:
        return None
    if not (math.isfinite(minutes) and minutes > 0):
        raise InputError(f"the time limit must be a positive number of minutes, got {minutes}")
    return 60.0 * minutes


def stopped_early(weights: Path) -> str | None:
    """A line saying how far a run stopped by its time limit got, from the weights' metadata; None if it finished."""
    meta = read_meta(weights)
    done, planned = meta.get("steps_done"), meta.get("steps_planned")
    if done is None or planned is None or done >= planned:
        return None
    return (f"stopped by the time limit at step {done} of {planned}: these weights are partial; run the same "
            f"command again to continue")


#: settings that say when to checkpoint and validate, not what is trained: a resumed run may change them
SCHEDULE_ONLY = frozenset({"checkpoint_every", "val_every", "eval_every"})


def _changed_settings(saved: dict[str, Any], cfg: Any) -> list[str]:
    """Settings that differ between a checkpoint and ``cfg``. A setting added to the config class since the
    checkpoint was written took, in that checkpoint, the value that reproduces the old behaviour: the class's
    ``LEGACY_VALUES[name]`` if it names one (a setting whose default differs from what older runs did), else its
    default."""
    now, defaults = asdict(cfg), asdict(type(cfg)())
    defaults.update(getattr(type(cfg), "LEGACY_VALUES", {}))
    return [k for k, v in now.items() if k not in SCHEDULE_ONLY and saved.get(k, defaults.get(k)) != v]
