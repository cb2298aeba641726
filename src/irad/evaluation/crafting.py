"""Crafting adversarial examples once per setting: the on-disk cache (finished batches kept, so a killed attack
resumes) and, under torchrun, each process's share of the images."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import distributed
from ..utils.io import atomic_write
from .config import parse_spec
from .store import setting_key


class AdvCache:
    """Adversarial examples on disk, one ``.npz`` per setting key (and ``.partial.npz`` for an unfinished run)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.folder / f"adv-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"

    def get(self, key: str) -> tuple[torch.Tensor, float] | None:
        p = self.path(key)
        if not p.is_file():
            return None
        with np.load(p) as f:
            if str(f["key"]) != key:
                return None
            return torch.from_numpy(f["adv"]), float(f["seconds"])

    def put(self, key: str, adv: torch.Tensor, seconds: float) -> None:
        with atomic_write(self.path(key)) as fh:
            np.savez(fh, key=np.array(key), adv=adv.numpy(), seconds=np.array(seconds))
        self.partial_path(key).unlink(missing_ok=True)

    def partial_path(self, key: str) -> Path:
        return self.path(key).with_suffix(".partial.npz")

    def get_partial(self, key: str) -> tuple[torch.Tensor, float] | None:
        """The batches of an attack run that was stopped before it finished (None: nothing to resume)."""
        p = self.partial_path(key)
        if not p.is_file():
            return None
        try:
            with np.load(p) as f:
                if str(f["key"]) != key:
                    return None
                return torch.from_numpy(f["adv"]), float(f["seconds"])
        except (OSError, ValueError, KeyError):  # unreadable: start the attack over
            return None

    def put_partial(self, key: str, adv: torch.Tensor, seconds: float) -> None:
        with atomic_write(self.partial_path(key)) as fh:
            np.savez(fh, key=np.array(key), adv=adv.numpy(), seconds=np.array(seconds))


def craft(attack_spec: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int,
           bs: int, dev: torch.device, cache: AdvCache, key: str, progress: bool = False
           ) -> tuple[torch.Tensor, float]:
    from ..attacks import build_attack, check_adversarial

    hit = cache.get(key)
    if hit is not None:
        check_adversarial(x, hit[0], eps)  # cheap, and catches a cache that does not belong to these images
        return hit
    name, params = parse_spec(attack_spec)
    attack = build_attack(name, model, eps=eps, seed=seed, **params)
    # Finished batches are kept as they complete, so a killed run resumes inside an attack. Each batch's random
    # draws come from the attack's seed alone (Attack.__call__ reseeds), so a resumed attack equals an unbroken one.
    parts, seconds = [], 0.0
    partial = cache.get_partial(key)
    if partial is not None and len(partial[0]) % bs == 0 and 0 < len(partial[0]) < len(x):
        check_adversarial(x[:len(partial[0])], partial[0], eps)
        parts, seconds = [partial[0]], partial[1]
        if progress:
            tqdm.write(f"resuming attack {attack_spec}: {len(partial[0])} of {len(x)} images done")
    done = sum(len(p) for p in parts)
    batches = tqdm(range(done, len(x), bs), desc=f"  {attack_spec}", unit="batch", leave=False, disable=not progress)
    for i in batches:
        t0 = time.perf_counter()
        parts.append(attack(x[i:i + bs].to(dev), y[i:i + bs].to(dev)).detach().cpu())
        seconds += time.perf_counter() - t0
        batches.set_postfix(images=f"{i + len(parts[-1])}/{len(x)}")
        if i + bs < len(x):
            cache.put_partial(key, torch.cat(parts), seconds)
    adv = torch.cat(parts)
    check_adversarial(x, adv, eps)
    cache.put(key, adv, seconds)
    return adv, seconds


def craft_share(attack_spec: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int,
                 bs: int, dev: torch.device, cache: AdvCache, key: str, progress: bool,
                 group: distributed.Context) -> tuple[torch.Tensor, float]:
    """:func:`craft` on this process's share of the images (``group.share(len(x), bs)``): the adversarial
    examples of the share and the attack's seconds summed over the processes. In one process, the whole of
    :func:`craft`. Under torchrun each share is cached (and resumed) under its own key; the shares are then
    gathered into the one cache file a one-process run writes and reads."""
    if not group.active:
        return craft(attack_spec, model, x, y, eps, seed, bs, dev, cache, key, progress)
    from ..attacks import check_adversarial

    share = group.share(len(x), bs)
    hit = cache.get(key)
    if hit is not None:
        check_adversarial(x, hit[0], eps)
        return hit[0][share], hit[1]
    share_key = setting_key(whole=key, share=[share.start, share.stop])
    if share.stop > share.start:
        adv, seconds = craft(attack_spec, model, x[share], y[share], eps, seed, bs, dev, cache, share_key,
                              progress and group.is_main)
    else:
        adv, seconds = x[:0].clone(), 0.0
    total = float(group.all_sum([seconds])[0])
    parts = group.gather((adv, share_key))  # the examples travel to rank 0 only, which writes the cache file
    if parts is not None:
        cache.put(key, torch.cat([p[0] for p in parts]), total)
        for _, k in parts:
            cache.path(k).unlink(missing_ok=True)
    group.barrier()
    return adv, total
