"""``irad train pairs``: adversarial/clean training pairs (§6, A.1) crafted with PGD against a surrogate.

PGD (Madry et al. 2018, via torchattacks): L-inf, ε = 8/255, step 2/255, 100 steps, random start, against a
ResNet-18 surrogate by default. Adversarial images are stored quantised to uint8 (rounding keeps them inside the
ε-ball, since clean pixels are integers / 255), in shards ``shard_XXXXX.npz`` holding ``index`` (into the split),
``adv`` (N x H x W x 3 uint8), ``labels`` and ``fooled`` (surrogate wrong on the stored adversarial image).
Existing shards are skipped, so a killed run resumes. ``meta.json`` records settings and the success rate.
Under torchrun the shards are dealt out to the processes (shard k to rank k mod N); each shard is seeded on its own,
so the folder is the same whatever the number of processes, and rank 0 writes ``meta.json`` when all are done.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import distributed
from ..data import ImageDataset, load_dataset
from ..data.images import from_uint8, to_uint8
from ..errors import DataError, InputError
from ..utils import atomic_save_json, resolve_device, seed_everything
from ..utils.io import atomic_write


@dataclass
class PairsConfig:
    surrogate: str = "resnet18"
    surrogate_weights: str = "default"
    dataset: str = "cifar10"
    split: str = "train"
    eps: float = 8 / 255
    alpha: float = 2 / 255
    steps: int = 100
    limit: int | None = None
    shard_size: int = 1000
    val_size: int = 5000
    seed: int = 0


def craft_pairs(cfg: PairsConfig, out: str | Path, data_root=None, device=None, batch_size: int = 250,
                progress: bool = True, command: str = "") -> Path:
    import torchattacks

    from ..classifiers import load_classifier

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())["config"]
        if old != asdict(cfg):
            raise InputError(f"{out} holds pairs made with other settings ({old}); use another --out folder")
    group, dev = distributed.setup(resolve_device(device))
    ds = load_dataset(cfg.dataset, cfg.split, root=data_root, val_size=cfg.val_size)
    if not isinstance(ds, ImageDataset):
        raise DataError("pair crafting needs an in-memory dataset (.npz or torchvision CIFAR folders)")
    n = len(ds) if cfg.limit is None else min(cfg.limit, len(ds))
    model = load_classifier(cfg.surrogate, cfg.dataset, cfg.surrogate_weights, device=dev)
    group.barrier()  # every process has compared the settings before rank 0 rewrites meta.json
    if group.is_main:
        atomic_save_json({"config": asdict(cfg), "complete": False, "command": command}, meta_path)
    attack = torchattacks.PGD(model, eps=cfg.eps, alpha=cfg.alpha, steps=cfg.steps, random_start=True)
    starts = list(range(0, n, cfg.shard_size))
    mine = list(enumerate(starts))[group.rank::group.world_size]
    for shard_id, start in tqdm(mine, desc="shards", disable=not (progress and group.is_main)):
        path = out / f"shard_{shard_id:05d}.npz"
        if path.is_file():
            continue
        seed_everything(cfg.seed + shard_id)  # each shard reproducible on its own, so resume = same result
        x, y = ds.tensors(min(cfg.shard_size, n - start), start)
        advs, fooled = [], []
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)
            adv = attack(xb, yb)
            adv_q = from_uint8(to_uint8(adv)).to(dev)
            with torch.no_grad():
                fooled.append((model(adv_q).argmax(1) != yb).cpu().numpy())
            advs.append(to_uint8(adv))
        with atomic_write(path) as fh:
            np.savez(fh, index=np.arange(start, start + len(x)), adv=np.concatenate(advs),
                     labels=y.numpy(), fooled=np.concatenate(fooled))
    group.barrier()  # all shards written
    if group.is_main:
        fooled_all = np.concatenate([np.load(out / f"shard_{i:05d}.npz")["fooled"] for i in range(len(starts))])
        atomic_save_json({"config": asdict(cfg), "complete": True, "images": int(n),
                          "attack_success_rate": float(fooled_all.mean()), "command": command,
                          "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                          **({"distributed": group.describe()} if group.active else {})}, meta_path)
    group.barrier()
    return out


def read_pairs_meta(folder: str | Path) -> dict:
    """The ``meta.json`` of a pairs folder (settings under ``config``)."""
    meta_path = Path(folder) / "meta.json"
    if not meta_path.is_file():
        raise DataError(f"{folder} holds no adversarial pairs (no meta.json); create them with `irad train pairs`")
    return json.loads(meta_path.read_text())


def check_pair_splits(train: str | Path, val: str | Path, dataset: str | None = None) -> None:
    """Refuse training pairs (``--pairs``) and validation pairs (``--val-pairs``) that could share images: the same
    folder, pairs not made on split ``train`` resp. ``val``, or made with different datasets or ``val_size`` (the
    held-out tail of the training file, so a different ``val_size`` moves images between the splits). Also refuse
    pairs of another dataset than the run's ``dataset``. A setting missing from an old ``meta.json`` is not compared.
    """
    if Path(train).resolve() == Path(val).resolve():
        raise InputError(f"--pairs and --val-pairs are the same folder ({train}): validation would score images the "
                         f"model trains on; craft validation pairs with `irad train pairs --split val` (same "
                         f"--dataset and --val-size) and pass them as --val-pairs")
    configs = {"--pairs": (train, read_pairs_meta(train).get("config", {}), "train"),
               "--val-pairs": (val, read_pairs_meta(val).get("config", {}), "val")}
    for option, (folder, cfg, split) in configs.items():
        if cfg.get("split", split) != split:
            raise InputError(f"{option} {folder}: made on split={cfg['split']!r}, but {option} must come from "
                             f"split={split!r}; craft them with `irad train pairs --split {split}`")
        if dataset is not None and cfg.get("dataset", dataset) != dataset:
            raise InputError(f"{option} {folder}: made on dataset {cfg['dataset']!r}, but this run trains on "
                             f"{dataset!r}; pass --dataset {cfg['dataset']} or pairs made on {dataset}")
    (_, t, _), (_, v, _) = configs.values()
    for key in ("dataset", "val_size"):
        if key in t and key in v and t[key] != v[key]:
            raise InputError(f"--pairs {train} were made with {key}={t[key]!r} but --val-pairs {val} with "
                             f"{key}={v[key]!r}: the train and val splits then overlap or differ; craft both with "
                             f"the same --{key.replace('_', '-')}")


class AdversarialPairs:
    """Clean images of a split and their stored adversarial versions (loaded by index)."""

    def __init__(self, folder: str | Path, data_root=None) -> None:
        folder = Path(folder)
        self.meta = read_pairs_meta(folder)
        if not self.meta.get("complete"):
            raise DataError(f"the pairs in {folder} are incomplete; re-run the same `irad train pairs` command to "
                            f"finish them")
        cfg = self.meta["config"]
        shards = sorted(folder.glob("shard_*.npz"))
        parts = [np.load(p) for p in shards]
        self.index = np.concatenate([p["index"] for p in parts])
        self.adv = np.concatenate([p["adv"] for p in parts])
        ds = load_dataset(cfg["dataset"], cfg["split"], root=data_root, val_size=cfg["val_size"])
        self.clean = ds.images[self.index]
        self.labels = ds.labels[self.index]
        if not np.array_equal(self.labels, np.concatenate([p["labels"] for p in parts])):
            raise DataError(f"the labels stored in {folder} do not match the dataset: the data changed since the "
                            f"pairs were made")

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(clean, adversarial, labels) for positions ``idx``, as float [0, 1] NCHW tensors."""
        return from_uint8(self.clean[idx]), from_uint8(self.adv[idx]), torch.from_numpy(self.labels[idx])
