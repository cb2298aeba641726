"""``irad train ...``: classifiers, the implicit representation, SampleNet, adversarial training pairs, the STL
dictionary."""

from __future__ import annotations

import click

from .common import common_options, friendly_errors


@click.group()
def train() -> None:
    """Train classifiers and the parts of IRAD (each run checkpoints and resumes)."""


@train.command("classifier")
@click.option("--arch", default="fastnet", help="Architecture name (see `irad list classifiers`).")
@click.option("--dataset", default="cifar10")
@click.option("--epochs", type=click.IntRange(min=1), default=8)
@click.option("--lr", type=float, default=0.2, help="Peak learning rate of the one-cycle schedule.")
@click.option("--weight-decay", type=float, default=5e-4)
@click.option("--label-smoothing", type=float, default=0.2)
@click.option("--train-limit", type=click.IntRange(min=1), default=None, help="Use only the first N images.")
@click.option("--val-size", type=click.IntRange(min=1), default=5000, help="Held-out tail of the training set.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run folder (resumes if present).")
@common_options
@friendly_errors
def train_classifier_cmd(arch, dataset, epochs, lr, weight_decay, label_smoothing, train_limit, val_size, out,
                         device, seed, batch_size, data_root) -> None:
    """Train a classifier; writes OUT/ARCH-DATASET.safetensors with a JSON sidecar."""
    from ..training.classifier import ClassifierRecipe, train_classifier

    recipe = ClassifierRecipe(arch=arch, dataset=dataset, epochs=epochs, batch_size=batch_size or 512, lr=lr,
                              weight_decay=weight_decay, label_smoothing=label_smoothing, train_limit=train_limit,
                              val_size=val_size, seed=seed)
    path = train_classifier(recipe, out, data_root=data_root, device=device)
    click.echo(f"weights: {path}")


@train.command("pairs")
@click.option("--surrogate", default="resnet18", help="Classifier attacked to craft the pairs (paper: ResNet-18).")
@click.option("--surrogate-weights", default="default", help="Registered weight name, 'default', or a file.")
@click.option("--dataset", default="cifar10")
@click.option("--split", type=click.Choice(["train", "val"]), default="train")
@click.option("--eps", type=float, default=8 / 255, help="L-inf budget (paper: 8/255).")
@click.option("--alpha", type=float, default=2 / 255, help="PGD step size (paper: 2/255).")
@click.option("--steps", type=click.IntRange(min=1), default=100, help="PGD steps (paper: 100).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images of the split.")
@click.option("--shard-size", type=click.IntRange(min=1), default=1000)
@click.option("--val-size", type=click.IntRange(min=1), default=5000)
@click.option("--out", type=click.Path(file_okay=False), required=True)
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

    meta = json.loads((path / "meta.json").read_text())
    click.echo(f"pairs: {path}  images={meta['images']}  attack success rate={meta['attack_success_rate']:.4f}")


@train.command("implicit")
@click.option("--task", default="adversarial-denoising",
              type=click.Choice(["clean2clean", "super-resolution", "inpainting", "gaussian-denoising",
                                 "adversarial-denoising"]))
@click.option("--pairs", type=click.Path(file_okay=False), default=None, help="Training pairs (adversarial task).")
@click.option("--val-pairs", type=click.Path(file_okay=False), default=None, help="Validation pairs.")
@click.option("--dataset", default="cifar10")
@click.option("--epochs", type=float, default=1.0, help="May be fractional.")
@click.option("--lr", type=float, default=1e-4)
@click.option("--queries", type=click.IntRange(min=1), default=None,
              help="Target pixels queried per image (default: all, as in the paper).")
@click.option("--encoder-blocks", type=click.IntRange(min=1), default=16, help="EDSR residual blocks (paper: 16).")
@click.option("--features", type=click.IntRange(min=1), default=64, help="EDSR features (paper: 64).")
@click.option("--train-limit", type=click.IntRange(min=1), default=None)
@click.option("--val-size", type=click.IntRange(min=1), default=5000)
@click.option("--val-images", type=click.IntRange(min=1), default=500)
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=50)
@click.option("--amp/--no-amp", default=False, help="bf16 autocast (GPU).")
@click.option("--init", "init_weights", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Warm start from an implicit/IRAD weight file (continues an earlier run with a new schedule).")
@click.option("--out", type=click.Path(file_okay=False), required=True)
@common_options
@friendly_errors
def train_implicit_cmd(task, pairs, val_pairs, dataset, epochs, lr, queries, encoder_blocks, features, train_limit,
                       val_size, val_images, checkpoint_every, amp, init_weights, out, device, seed, batch_size, data_root) -> None:
    """Train the implicit representation (EDSR encoder + MLP decoder) on one of the five tasks."""
    from ..training.implicit import ImplicitConfig, train_implicit

    cfg = ImplicitConfig(task=task, dataset=dataset, pairs=pairs, val_pairs=val_pairs, epochs=epochs,
                         batch_size=batch_size or 128, lr=lr, queries=queries, n_resblocks=encoder_blocks,
                         n_feats=features, train_limit=train_limit, val_size=val_size, val_images=val_images,
                         checkpoint_every=checkpoint_every, amp=amp, init=init_weights, seed=seed)
    click.echo(f"weights: {train_implicit(cfg, out, data_root=data_root, device=device)}")


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
@click.option("--amp/--no-amp", default=False, help="bf16 autocast (GPU).")
@click.option("--out", type=click.Path(file_okay=False), required=True)
@common_options
@friendly_errors
def train_samplenet_cmd(implicit_weights, pairs, val_pairs, surrogate, surrogate_weights, dataset, epochs, lr,
                        train_limit, val_images, checkpoint_every, amp, out, device, seed, batch_size,
                        data_root) -> None:
    """Train SampleNet with the implicit representation frozen; writes OUT/irad.safetensors."""
    from ..training.samplenet import SampleNetConfig, train_samplenet

    cfg = SampleNetConfig(implicit=implicit_weights, pairs=pairs, val_pairs=val_pairs, surrogate=surrogate,
                          surrogate_weights=surrogate_weights, dataset=dataset, epochs=epochs,
                          batch_size=batch_size or 400, lr=lr, train_limit=train_limit, val_images=val_images,
                          checkpoint_every=checkpoint_every, amp=amp, seed=seed)
    click.echo(f"weights: {train_samplenet(cfg, out, data_root=data_root, device=device)}")


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
@click.option("--val-images", type=click.IntRange(min=1), default=64, help="Validation images for the PSNR log.")
@click.option("--val-size", type=click.IntRange(min=1), default=5000, help="Held-out tail of the training set.")
@click.option("--eval-every", type=click.IntRange(min=1), default=100)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run folder (resumes if present).")
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
