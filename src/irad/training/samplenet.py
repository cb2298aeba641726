"""``irad train samplenet``: the second stage of §4.3 / A.1.

FEAT and φ are frozen; SampleNet is trained, through the defense's own forward (``ImageResampler``), with the surrogate classifier's cross-entropy on the resampled clean
image plus the resampled adversarial image: L = CE(f(IR(X)), y) + CE(f(IR(X')), y). Adam (lr 2e-4, betas (0, 0.9)),
batch 400 (CIFAR-10 settings of the paper). The encoder runs once per image and serves SampleNet and the decoder.

``fidelity`` (λ, default 0: the paper's loss) adds λ · |IR(X) − X|₁ (mean over pixels, images in [0, 1]): a term,
not in the paper, that keeps the resampled *clean* image close to the clean image, so that SampleNet cannot buy
robustness by blurring every input (issue 14: an unconstrained SampleNet took IRAD(clean) to 24.6 dB). Validation
reports PSNR(IR(X), X) and PSNR(IR(X'), X) beside the accuracies, the figures that choose λ. The log's
``train_loss`` is the whole loss (with λ = 0, the paper's sum of the two cross-entropies).
Result: one ``irad.safetensors`` holding the implicit representation and SampleNet together (written at every
validation while the run goes on, partial until its last step).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import distributed
from ..errors import InputError
from ..metrics import psnr
from ..resampling import ImageResampler
from ..sampling import IdentitySampler, SampleNet
from ..utils import resolve_device, seed_everything
from ..utils.validation import is_real
from .implicit import save_resampler_weights
from .pairs import AdversarialPairs, check_pair_splits
from .loop import Step, check_schedule, minutes_to_seconds, train_steps
from .rundir import RunDir


@dataclass
class SampleNetConfig:
    implicit: str = ""  # weight file from `irad train implicit`
    pairs: str = ""
    val_pairs: str = ""
    surrogate: str = "resnet18"
    surrogate_weights: str = "default"
    dataset: str = "cifar10"
    epochs: float = 1.0
    batch_size: int = 400
    lr: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)
    train_limit: int | None = None
    val_images: int = 500
    checkpoint_every: int = 25
    val_every: int | None = None  # validate (and export the weights so far) every k steps as well as at epoch ends
    amp: bool = False  # bf16 autocast (GPU recipe)
    fidelity: float = 0.0  # λ of λ·|IR(X) − X|₁ on clean images (0: the paper's loss)
    seed: int = 0


def resampler_for_training(recon, samplenet: SampleNet) -> ImageResampler:
    """IR(implicit, SampleNet), the module the ``irad`` defense runs, with the implicit representation frozen: the
    SampleNet stage trains through the defense's own forward (the encoder runs once and serves SampleNet and the
    decoder; with its weights frozen and the images constant, no graph is kept through it)."""
    recon.requires_grad_(False)
    return ImageResampler(recon, samplenet, validate=False)


@torch.no_grad()
def validation_accuracy(resampler: ImageResampler, classifier, pairs: AdversarialPairs, n: int,
                        device) -> dict[str, float]:
    """The surrogate's accuracy on validation pairs, clean and adversarial, after IR(implicit, SampleNet) and after
    the implicit representation alone at the pixel grid (``_no_shift``), and the PSNR (dB, mean over images)
    of IR(X) and IR(X') against the clean image X."""
    no_shift = ImageResampler(resampler.reconstruction, IdentitySampler(), validate=False)
    resampler.sampler.eval()
    correct = {"val_clean_acc": 0, "val_adv_acc": 0, "val_clean_acc_no_shift": 0, "val_adv_acc_no_shift": 0}
    psnr_sum = {"val_clean_psnr": 0.0, "val_adv_psnr": 0.0}
    total = 0
    for start in range(0, min(n, len(pairs)), 250):
        idx = np.arange(start, min(start + 250, n, len(pairs)))
        clean, adv, y = pairs.batch(idx)
        for name, x in (("clean", clean), ("adv", adv)):
            x = x.to(device)
            resampled = resampler(x)
            correct[f"val_{name}_acc"] += (classifier(resampled).argmax(1).cpu() == y).sum().item()
            correct[f"val_{name}_acc_no_shift"] += (classifier(no_shift(x)).argmax(1).cpu() == y).sum().item()
            psnr_sum[f"val_{name}_psnr"] += float(psnr(resampled.cpu(), clean).sum())
        total += len(idx)
    resampler.sampler.train()
    return {**{k: v / total for k, v in correct.items()}, **{k: v / total for k, v in psnr_sum.items()}}


def trained_against(pairs: AdversarialPairs, cfg: SampleNetConfig) -> list[str]:
    """Classifiers whose gradients shaped the defense: the pairs' surrogate (φ's adversarial inputs) and SampleNet's
    classifier. An evaluation whose victim is one of them is white-box with respect to training (README)."""
    names = {pairs.meta.get("config", {}).get("surrogate"), cfg.surrogate}
    return sorted(n for n in names if n)


def train_samplenet(cfg: SampleNetConfig, out: str | Path, data_root=None, device=None,
                    command: list[str] | None = None, progress: bool = True,
                    time_limit_min: float | None = None) -> Path:
    from ..classifiers import load_classifier
    from ..defenses.resampling import load_irad_parts

    if not (cfg.implicit and cfg.pairs and cfg.val_pairs):
        raise InputError("SampleNet training needs --implicit WEIGHTS, --pairs DIR and --val-pairs DIR")
    check_schedule(cfg, "SampleNet training")  # settings are checked before the run folder is made
    if not (is_real(cfg.fidelity) and cfg.fidelity >= 0):
        raise InputError(f"SampleNet training: fidelity must be a finite number >= 0 (the weight of |IR(X) - X|), "
                         f"got {cfg.fidelity!r}; pass --fidelity 0 for the paper's loss")
    time_limit_s = minutes_to_seconds(time_limit_min)
    check_pair_splits(cfg.pairs, cfg.val_pairs, cfg.dataset)
    group, dev = distributed.setup(resolve_device(device))
    run = RunDir(out, command)
    seed_everything(cfg.seed)
    recon, _, implicit_meta = load_irad_parts(cfg.implicit, cfg.dataset)
    recon = recon.to(dev).eval().requires_grad_(False)
    classifier = load_classifier(cfg.surrogate, cfg.dataset, cfg.surrogate_weights, device=dev).requires_grad_(False)
    samplenet = SampleNet(recon.config["n_feats"], tuple(recon.config["hidden"])).to(dev)
    resampler = resampler_for_training(recon, samplenet)
    train, val = AdversarialPairs(cfg.pairs, data_root), AdversarialPairs(cfg.val_pairs, data_root)
    n_train = len(train) if cfg.train_limit is None else min(cfg.train_limit, len(train))
    opt = torch.optim.Adam(samplenet.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    if run.load_checkpoint() is None and group.is_main:
        run.log({"event": "initial", **validation_accuracy(resampler, classifier, val, cfg.val_images, dev)})

    def loss_fn(step: Step) -> torch.Tensor:
        clean, adv, y = train.batch(step.indices)
        if torch.rand((), generator=step.generator) < 0.5:  # drawn for the whole batch, then this share is kept
            clean, adv = clean.flip(-1), adv.flip(-1)
        clean, adv, y = clean[step.share], adv[step.share], y[step.share]
        x = torch.cat([clean, adv]).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.amp):
            resampled = step.net(x)
            logits = classifier(resampled).float()
        loss = 2 * F.cross_entropy(logits, torch.cat([y, y]).to(dev))  # = CE(clean) + CE(adv), batch means
        if cfg.fidelity:
            loss = loss + cfg.fidelity * F.l1_loss(resampled[:len(clean)].float(), x[:len(clean)])
        return loss

    path = run.path / "irad.safetensors"

    def export(record: dict) -> None:
        save_resampler_weights(recon, samplenet, path, {
            "task": implicit_meta.get("task"), "dataset": cfg.dataset, "implicit_config": implicit_meta.get(
                "implicit_config"), "implicit_command": implicit_meta.get("command"), "samplenet_config": asdict(cfg),
            "command": run.command, "device": str(dev), "trained_against": trained_against(train, cfg), **record,
            **({"distributed": group.describe()} if group.active else {})})

    done = train_steps(run, cfg, samplenet, opt, n_train, loss_fn,
                       lambda: validation_accuracy(resampler, classifier, val, cfg.val_images, dev),
                       "train_loss", "samplenet", progress,
                       {"device": str(dev), "train_images": n_train}, time_limit_s, export=export, forward=resampler)
    if not group.is_main:
        group.barrier()  # rank 0 writes the weights
        return path
    export(done)
    run.log({"event": "done", "weights": str(path)})
    group.barrier()
    return path
