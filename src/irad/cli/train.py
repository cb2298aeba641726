"""``irad train ...``: classifiers, the implicit representation, SampleNet, adversarial training pairs, the STL
dictionary."""

from __future__ import annotations

import functools

import click

from .common import (PIXEL_BUDGET, NamesChoice, common_options, friendly_errors, on_main_process,
                     refuse_under_torchrun, registry_names)

# options shared by the training commands
VAL_SIZE = click.option("--val-size", type=click.IntRange(min=1), default=5000,
                        help="Training images held out for validation (the last ones; every k-th image of class folders).")
RUN_DIR = click.option("--out", type=click.Path(file_okay=False), required=True,
                       help="Run folder (resumes if present).")


def downloadable(func):
    """Add ``--download`` to a training command: fetch the dataset (CIFAR-10/100, with torchvision) into ``--data``
    before the command runs, since the training code itself never downloads."""

    @functools.wraps(func)
    def wrapper(*args, download: bool = False, **kwargs):
        if download:
            from ..data import download_dataset

            click.echo(f"data: {download_dataset(kwargs['dataset'], kwargs['data_root'])}")
        return func(*args, **kwargs)

    return click.option("--download", is_flag=True, default=False,
                        help="First fetch CIFAR-10/100 with torchvision into --data DIR (skipped if it is there).")(
        friendly_errors(wrapper))  # a failed download is one clear error too


# checked (positive, finite) once, by irad.training.loop.minutes_to_seconds
TIME_LIMIT = click.option("--time-limit", "time_limit", type=float, default=None,
                          metavar="MINUTES", help="Stop cleanly after this many minutes of training (validates, "
                          "checkpoints and exports the weights, and says so); the same command later continues.")


def _report(weights) -> None:
    """Print where the weights are, and say so when a --time-limit stopped the run before its last step."""
    from ..training.loop import stopped_early

    if not on_main_process():
        return
    click.echo(f"weights: {weights}")
    note = stopped_early(weights)
    if note:
        click.echo(note)


class _Betas(click.ParamType):
    """Adam's two betas as ``B1,B2`` (checked to lie in [0, 1) by the trainers)."""

    name = "B1,B2"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            b1, b2 = (float(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not two numbers B1,B2 (e.g. 0.9,0.999)", param, ctx)
        return (b1, b2)


BETAS = _Betas()


def _folders(values: tuple[str, ...]) -> str | list[str] | None:
    """A repeated folder option as the config stores it: None, one folder, or a list of several."""
    if not values:
        return None
    return values[0] if len(values) == 1 else list(values)


def val_images(default: int, what: str):
    return click.option("--val-images", type=click.IntRange(min=1), default=default,
                        help=f"Validation images for the {what} log.")


@click.group()
@click.pass_context
def train(ctx: click.Context) -> None:
    """Train classifiers and the parts of IRAD (each run checkpoints and resumes).

    classifier, implicit, samplenet and pairs also run on several processes under torchrun
    (`torchrun --nproc-per-node N -m irad train implicit ...`): --batch-size is then the global batch.
    """
    refuse_under_torchrun(ctx, "train ")


@train.command("classifier")
@click.option("--arch", default="fastnet", help="Architecture name (see `irad list classifiers`).")
@click.option("--dataset", default="cifar10")
@click.option("--epochs", type=click.IntRange(min=1), default=8)
@click.option("--lr", type=float, default=0.2, help="Peak learning rate of the one-cycle schedule.")
@click.option("--weight-decay", type=float, default=5e-4)
@click.option("--label-smoothing", type=float, default=0.2)
@click.option("--train-limit", type=click.IntRange(min=1), default=None, help="Use only the first N images.")
@VAL_SIZE
@RUN_DIR
@downloadable
@common_options
@friendly_errors
def train_classifier_cmd(arch, dataset, epochs, lr, weight_decay, label_smoothing, train_limit, val_size, out,
                         device, seed, batch_size, data_root) -> None:
    """Train a classifier; writes OUT/ARCH-DATASET.safetensors (metadata in its header)."""
    from ..training.classifier import ClassifierRecipe, train_classifier

    recipe = ClassifierRecipe(arch=arch, dataset=dataset, epochs=epochs, batch_size=batch_size or 512, lr=lr,
                              weight_decay=weight_decay, label_smoothing=label_smoothing, train_limit=train_limit,
                              val_size=val_size, seed=seed)
    _report(train_classifier(recipe, out, data_root=data_root, device=device))


@train.command("pairs")
@click.option("--surrogate", default="resnet18", help="Classifier attacked to craft the pairs (paper: ResNet-18).")
@click.option("--surrogate-weights", default="default", help="Registered weight name, 'default', or a file.")
@click.option("--dataset", default="cifar10")
@click.option("--split", type=click.Choice(["train", "val"]), default="train")
@click.option("--eps", type=PIXEL_BUDGET, default="8/255", show_default=True, help="L-inf budget (the paper's).")
@click.option("--alpha", type=PIXEL_BUDGET, default="2/255", show_default=True, help="PGD step size (the paper's).")
@click.option("--steps", type=click.IntRange(min=1), default=100, help="PGD steps (paper: 100).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images of the split.")
@click.option("--shard-size", type=click.IntRange(min=1), default=1000)
@click.option("--val-size", type=click.IntRange(min=1), default=5000)
@click.option("--out", type=click.Path(file_okay=False), required=True)
@downloadable
@common_options
@friendly_errors
def train_pairs_cmd(surrogate, surrogate_weights, dataset, split, eps, alpha, steps, limit, shard_size, val_size,
                    out, device, seed, batch_size, data_root) -> None:
    """Craft PGD adversarial/clean pairs (uint8 shards, resumable)."""
    import shlex
    import sys

    from ..training.pairs import PairsConfig, craft_pairs

    cfg = PairsConfig(surrogate, surrogate_weights, dataset, split, eps, alpha, steps, limit, shard_size, val_size,
                      seed)
    path = craft_pairs(cfg, out, data_root=data_root, device=device, batch_size=batch_size or 250,
                       command=shlex.join(["irad", *sys.argv[1:]]))
    import json

    if not on_main_process():
        return
    meta = json.loads((path / "meta.json").read_text())
    click.echo(f"pairs: {path}  images={meta['images']}  attack success rate={meta['attack_success_rate']:.4f}")


@train.command("implicit")
@click.option("--task", default="adversarial-denoising", type=NamesChoice(registry_names("irad.training.tasks", "TASKS")),
              help="The training task (§4.2, Table 7); a plugin's registered task can be chosen too.")
@click.option("--pairs", type=click.Path(file_okay=False), multiple=True,
              help="Training pairs (adversarial task); repeat to train on several folders (e.g. two surrogates).")
@click.option("--val-pairs", type=click.Path(file_okay=False), multiple=True,
              help="Validation pairs; repeat to also log val_psnr@FOLDER for further folders.")
@click.option("--dataset", default="cifar10")
@click.option("--epochs", type=float, default=1.0, help="May be fractional.")
@click.option("--lr", type=float, default=5e-4, help="Adam's learning rate (paper: 1e-4).")
@click.option("--lr-schedule", type=NamesChoice(registry_names("irad.training.implicit", "LR_SCHEDULES")),
              default="constant",
              help="cosine: decay to 1 % of --lr over the planned steps.")
@click.option("--betas", type=BETAS, default="0.9,0.999", show_default=True, help="Adam's betas (paper: 0,0.9).")
@click.option("--queries", type=click.IntRange(min=1), default=None,
              help="Target pixels queried per image (default: all, as in the paper).")
@click.option("--crop", type=click.IntRange(min=0), default=16,
              help="Train on random CROP x CROP patches of each image, all their pixels queried (LIIF's patches); "
                   "0: whole images (the paper).")
@click.option("--residual/--no-residual", default=True,
              help="Predict a correction added to the (bilinear) input rather than the colour itself; "
                   "--no-residual is plain LIIF, the paper's.")
@click.option("--encoder-blocks", type=click.IntRange(min=1), default=16, help="EDSR residual blocks (paper: 16).")
@click.option("--features", type=click.IntRange(min=1), default=64, help="EDSR features (paper: 64).")
@click.option("--train-limit", type=click.IntRange(min=1), default=None)
@click.option("--val-size", type=click.IntRange(min=1), default=5000)
@click.option("--val-images", type=click.IntRange(min=1), default=500)
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=50)
@click.option("--val-every", type=click.IntRange(min=1), default=None,
              help="Validate every N steps as well as at each epoch end (learning curves).")
@click.option("--amp/--no-amp", default=False, help="bf16 autocast (GPU).")
@click.option("--init", "init_weights", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Warm start from an implicit/IRAD weight file (continues an earlier run with a new schedule).")
@click.option("--out", type=click.Path(file_okay=False), required=True)
@TIME_LIMIT
@downloadable
@common_options
@friendly_errors
def train_implicit_cmd(task, pairs, val_pairs, dataset, epochs, lr, lr_schedule, betas, queries, crop, residual,
                       encoder_blocks, features, train_limit, val_size, val_images, checkpoint_every, val_every, amp,
                       init_weights, out, time_limit, device, seed, batch_size, data_root) -> None:
    """Train the implicit representation (EDSR encoder + MLP decoder) on one of the five tasks.

    Defaults: the CPU recipe study's winner (16 x 16 patches, residual output, Adam 5e-4 betas 0.9,0.999, batch
    32). The paper's: --crop 0 --no-residual --lr 1e-4 --betas 0,0.9 --batch-size 128."""
    from ..training.implicit import ImplicitConfig, train_implicit

    cfg = ImplicitConfig(task=task, dataset=dataset, pairs=_folders(pairs), val_pairs=_folders(val_pairs),
                         epochs=epochs, batch_size=batch_size or 32, lr=lr, lr_schedule=lr_schedule, betas=betas,
                         queries=queries, crop=crop or None, residual=residual, n_resblocks=encoder_blocks,
                         n_feats=features, train_limit=train_limit, val_size=val_size, val_images=val_images, checkpoint_every=checkpoint_every,
                         val_every=val_every, amp=amp, init=init_weights, seed=seed)
    _report(train_implicit(cfg, out, data_root=data_root, device=device, time_limit_min=time_limit))


@train.command("samplenet")
@click.option("--implicit", "implicit_weights", type=click.Path(dir_okay=False), required=True,
              help="Weights from `irad train implicit`.")
@click.option("--pairs", type=click.Path(file_okay=False), required=True)
@click.option("--val-pairs", type=click.Path(file_okay=False), required=True)
@click.option("--surrogate", default="resnet18")
@click.option("--surrogate-weights", default="default")
@click.option("--dataset", default="cifar10")
@click.option("--epochs", type=float, default=1.0)
@click.option("--lr", type=float, default=2e-4)
@click.option("--train-limit", type=click.IntRange(min=1), default=None)
@click.option("--val-images", type=click.IntRange(min=1), default=500)
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=25)
@click.option("--val-every", type=click.IntRange(min=1), default=None,
              help="Also validate (and write the weights so far) every N steps, at a checkpoint.")
@click.option("--fidelity", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Weight of |IR(X) - X| on clean images, which keeps them sharp (0: the paper's loss).")
@click.option("--amp/--no-amp", default=False, help="bf16 autocast (GPU).")
@click.option("--out", type=click.Path(file_okay=False), required=True)
@TIME_LIMIT
@downloadable
@common_options
@friendly_errors
def train_samplenet_cmd(implicit_weights, pairs, val_pairs, surrogate, surrogate_weights, dataset, epochs, lr,
                        train_limit, val_images, checkpoint_every, val_every, fidelity, amp, out, time_limit, device,
                        seed, batch_size, data_root) -> None:
    """Train SampleNet with the implicit representation frozen; writes OUT/irad.safetensors."""
    from ..training.samplenet import SampleNetConfig, train_samplenet

    cfg = SampleNetConfig(implicit=implicit_weights, pairs=pairs, val_pairs=val_pairs, surrogate=surrogate,
                          surrogate_weights=surrogate_weights, dataset=dataset, epochs=epochs,
                          batch_size=batch_size or 400, lr=lr, train_limit=train_limit, val_images=val_images,
                          checkpoint_every=checkpoint_every, val_every=val_every, fidelity=fidelity, amp=amp,
                          seed=seed)
    _report(train_samplenet(cfg, out, data_root=data_root, device=device, time_limit_min=time_limit))


@train.command("stl")
@click.option("--dataset", default="cifar10")
@click.option("--atoms", type=click.IntRange(min=1), default=64, help="Number of convolutional filters K.")
@click.option("--size", type=click.IntRange(min=1), default=7, help="Filter size s (filters are 3 x s x s).")
@click.option("--lam", type=click.FloatRange(min=0), default=0.1,
              help="Sparsity weight of the codes (training and the defense's default).")
@click.option("--lowpass", type=click.FloatRange(min=0), default=5.0,
              help="Tikhonov weight of the low/high-frequency split.")
@click.option("--iterations", type=click.IntRange(min=1), default=60, help="FISTA steps of the defense.")
@click.option("--train-iterations", type=click.IntRange(min=1), default=40, help="FISTA steps per training batch.")
@click.option("--images", type=click.IntRange(min=1), default=4000, help="Use the first N training images.")
@click.option("--steps", type=click.IntRange(min=1), default=500, help="Dictionary updates.")
@click.option("--crop", type=click.IntRange(min=1), default=16, help="Random crop size of the training images.")
@click.option("--lr", type=float, default=0.01, help="Adam learning rate (cosine decay to 0).")
@val_images(64, "PSNR")
@VAL_SIZE
@click.option("--eval-every", type=click.IntRange(min=1), default=100)
@RUN_DIR
@downloadable
@common_options
@friendly_errors
def train_stl_cmd(dataset, atoms, size, lam, lowpass, iterations, train_iterations, images, steps, crop, lr,
                  val_images, val_size, eval_every, out, device, seed, batch_size, data_root) -> None:
    """Learn the convolutional dictionary of the STL baseline (Sun et al. 2019); writes OUT/stl.safetensors."""
    from ..training.stl import STLConfig, train_stl

    cfg = STLConfig(dataset=dataset, atoms=atoms, size=size, lam=lam, lowpass=lowpass, iterations=iterations,
                    train_iterations=train_iterations, images=images, steps=steps, batch_size=batch_size or 32,
                    crop=crop, lr=lr, val_images=val_images, val_size=val_size, eval_every=eval_every, seed=seed)
    click.echo(f"weights: {train_stl(cfg, out, data_root=data_root, device=device)}")


@train.command("nrp")
@click.option("--dataset", default="cifar10")
@click.option("--width", type=click.IntRange(min=1), default=32, help="Purifier features.")
@click.option("--blocks", type=click.IntRange(min=0), default=4, help="Purifier residual blocks.")
@click.option("--feature-net", default="fastnet", help="Classifier whose layer is the feature map F.")
@click.option("--feature-weights", default="default", help="Its weights: registered name, 'default', or a file.")
@click.option("--feature-layer", default="layers.1", help="Sub-module of the classifier's net whose output is F.")
@click.option("--eps", type=PIXEL_BUDGET, default="16/255", show_default=True,
              help="L-inf budget of the self-supervised perturbation (NRP's).")
@click.option("--ssp-steps", type=click.IntRange(min=0), default=5, help="Signed-gradient steps of the SSP.")
@click.option("--ssp-step", type=PIXEL_BUDGET, default="4/255", show_default=True,
              help="Step size of the SSP.")
@click.option("--pixel-weight", type=click.FloatRange(min=0), default=100.0,
              help="Weight of the pixel MSE against the feature MSE.")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=1.0, help="May be fractional.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-4, help="Adam learning rate.")
@click.option("--pad", type=click.IntRange(min=0), default=4, help="Random translation (pixels) of the crops.")
@click.option("--train-limit", type=click.IntRange(min=1), default=None, help="Use only the first N images.")
@val_images(64, "PSNR")
@VAL_SIZE
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=50)
@RUN_DIR
@downloadable
@common_options
@friendly_errors
def train_nrp_cmd(dataset, width, blocks, feature_net, feature_weights, feature_layer, eps, ssp_steps, ssp_step,
                  pixel_weight, epochs, lr, pad, train_limit, val_images, val_size, checkpoint_every, out,
                  device, seed, batch_size, data_root) -> None:
    """Train the purifier of the NRP baseline (Naseer et al. 2020); writes OUT/nrp.safetensors."""
    from ..training.nrp import NRPConfig, train_nrp

    cfg = NRPConfig(dataset=dataset, width=width, blocks=blocks, feature_net=feature_net,
                    feature_weights=feature_weights, feature_layer=feature_layer, eps=eps, ssp_steps=ssp_steps,
                    ssp_step=ssp_step, pixel_weight=pixel_weight, epochs=epochs, batch_size=batch_size or 32, lr=lr,
                    pad=pad, train_limit=train_limit, val_images=val_images, val_size=val_size,
                    checkpoint_every=checkpoint_every, seed=seed)
    click.echo(f"weights: {train_nrp(cfg, out, data_root=data_root, device=device)}")


def _mults(ctx, param, value: str) -> tuple[int, ...]:
    try:
        mults = tuple(int(m) for m in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers such as 1,2, got {value!r}") from None
    if not mults or min(mults) < 1:
        raise click.BadParameter(f"multipliers must be integers >= 1, got {value!r}")
    return mults


@train.command("diffusion")
@click.option("--dataset", default="cifar10")
@click.option("--channels", type=click.IntRange(min=1), default=32, help="U-Net width at full resolution.")
@click.option("--mults", default="1,2", callback=_mults,
              help="Width multiplier per resolution, comma-separated (1,2: 32x32 and 16x16).")
@click.option("--blocks", type=click.IntRange(min=1), default=1, help="Residual blocks per resolution.")
@click.option("--dropout", type=click.FloatRange(min=0, max=1, max_open=True), default=0.0)
@click.option("--t-min", type=click.FloatRange(min=0, max=1), default=1e-4, help="Training times t ~ U(t-min, t-max).")
@click.option("--t-max", type=click.FloatRange(min=0, max=1), default=0.2,
              help="Largest training time (DiffPure purifies from t* = 0.1, so the score is needed only below it).")
@click.option("--images", type=click.IntRange(min=1), default=None, help="Use only the first N training images.")
@click.option("--steps", type=click.IntRange(min=1), default=10000, help="Optimiser steps.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-4,
              help="Adam learning rate (linear warm-up, then constant).")
@click.option("--warmup", type=click.IntRange(min=0), default=200, help="Warm-up steps.")
@click.option("--ema", type=click.FloatRange(min=0, max=1, max_open=True), default=0.999,
              help="EMA decay of the saved weights (0: none).")
@val_images(256, "loss")
@VAL_SIZE
@click.option("--eval-every", type=click.IntRange(min=1), default=250, help="Validate and checkpoint every N steps.")
@RUN_DIR
@downloadable
@common_options
@friendly_errors
def train_diffusion_cmd(dataset, channels, mults, blocks, dropout, t_min, t_max, images, steps, lr, warmup, ema,
                        val_images, val_size, eval_every, out, device, seed, batch_size, data_root) -> None:
    """Train the score model of the DiffPure baseline (Nie et al. 2022); writes OUT/diffpure.safetensors."""
    from ..training.diffusion import DiffusionConfig, train_diffusion

    cfg = DiffusionConfig(dataset=dataset, channels=channels, mults=mults, blocks=blocks, dropout=dropout,
                          t_min=t_min, t_max=t_max, images=images, steps=steps, batch_size=batch_size or 64, lr=lr,
                          warmup=warmup, ema=ema, val_images=val_images, val_size=val_size, eval_every=eval_every,
                          seed=seed)
    click.echo(f"weights: {train_diffusion(cfg, out, data_root=data_root, device=device)}")
