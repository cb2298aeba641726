"""The evaluation runner behind ``irad evaluate``.

For every victim x threat model x attack x ε, adversarial examples are crafted once and cached on disk (keyed by
victim or surrogate, attack and its parameters, ε, image range, a digest of the images and labels, batch size and
seed; for adaptive threat models also by the defense), so ten defenses share one oblivious attack run. Every finished result row is written to
``results.json`` atomically at once; a killed run resumes where it stopped. Rows hold counts (not only
percentages), so runs over disjoint image ranges merge exactly (:func:`merge_results`).

Under torchrun (:mod:`irad.distributed`) each process attacks and scores a contiguous share of the images, cut on
batch boundaries; the counts are all-reduced and rank 0 writes the one report. Attacks reseed at every batch and
randomized defenses are scored under a seed per (repeat, batch), so the numbers equal a one-process run's.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .. import distributed
from ..data import dataset_info, first_batch, load_dataset
from ..errors import InputError
from ..utils import resolve_device, seed_everything
from . import crafting, scoring
from .config import EvalConfig, check_config, parse_spec
from .planning import Models, Setting, attacked_model, plan
from .sanity import sanity_checks
from .store import ResultStore, data_digest, merge_results, with_rates

__all__ = ["evaluate", "merge_results"]


def evaluate(cfg: EvalConfig, out: str | Path, data_root=None, device=None, progress: bool = True,
             cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Run (or resume) an evaluation; writes results.json/.csv/.md (+ plots) into ``out``; returns the rows.

    ``cache_dir`` (default ``out/cache``) holds the adversarial examples; point several runs at one folder to share
    attack runs between them. Under torchrun the images are split across the processes (see the module's notes);
    every process returns the same rows, rank 0 writes the files."""
    check_config(cfg)
    group, dev = distributed.setup(resolve_device(device))
    progress = progress and group.is_main
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out / "results.json", cfg, group)
    cache = crafting.AdvCache(Path(cache_dir) if cache_dir else out / "cache")
    x, y = _images(cfg, data_root)
    eps_list = cfg.eps or [dataset_info(cfg.dataset).default_eps]
    # batch size belongs to the setting: attacks and randomized defenses draw their randomness per batch
    common = {"dataset": cfg.dataset, "split": cfg.split, "start": cfg.start, "n": len(x), "seed": cfg.seed,
              "images": data_digest(x, y), "batch_size": cfg.batch_size}
    models = Models(cfg.dataset, dev)
    share = group.share(len(x), cfg.batch_size)  # this process's images (all of them in one process)
    _check_specs_up_front(cfg, models.defense, models.victim, eps_list[0], x[:1].to(dev))
    for spec in cfg.victims:  # a wrong normalisation or checkpoint shows here, before any attack runs
        ok = scoring.is_correct(models.victim(spec), x[share], y[share], cfg.batch_size, dev)
        n_ok, n_seen = group.all_sum([ok.sum(), len(ok)])
        store.victims[spec] = {"clean_accuracy": float(n_ok / n_seen), "images": int(n_seen)}
        if progress:
            tqdm.write(f"victim {spec}: clean accuracy {100 * n_ok / n_seen:.1f} % on {int(n_seen)} images "
                       f"(no defense)")
    settings = plan(cfg, models, eps_list, common)
    for setting in tqdm(settings, desc="evaluate", disable=not progress):
        if setting.row_key not in store:
            store.add(_compute_row(setting, cfg, models, x, y, share, common, cache, dev, group, progress))
    # Report this configuration's rows only; rows of earlier configurations stay in results.json.
    rows = [store.rows[s.row_key] for s in settings]
    if not group.is_main:  # rank 0 runs the sanity checks (on its own full copy of the images) and writes
        return rows
    store.sanity = sanity_checks(rows, cfg, models.defense, x, y, dev, models.victim)
    store.save()
    from .report import write_reports

    write_reports(rows, out, cfg.paper, store.sanity)
    return rows


def _images(cfg: EvalConfig, data_root) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``cfg.start .. cfg.start + cfg.n_images - 1`` of the split and their labels."""
    x_all, y_all = first_batch(load_dataset(cfg.dataset, cfg.split, root=data_root), cfg.start + cfg.n_images)
    x, y = x_all[cfg.start:], y_all[cfg.start:]
    if len(x) < cfg.n_images:
        raise InputError(f"images {cfg.start}..{cfg.start + cfg.n_images - 1} were asked for, but the {cfg.dataset} "
                         f"{cfg.split!r} split has {len(x_all)} images; lower -n (at most "
                         f"{max(len(x_all) - cfg.start, 0)} from --start {cfg.start})")
    return x, y


def _compute_row(setting: Setting, cfg: EvalConfig, models: Models, x: torch.Tensor, y: torch.Tensor, share: slice,
                 common: dict[str, Any], cache: crafting.AdvCache, dev: torch.device, group: distributed.Context,
                 progress: bool) -> dict[str, Any]:
    """Craft (or reuse) the setting's attack on this process's images, score clean and adversarial images through
    the defended victim, and sum the counts over the processes."""
    victim, defense = models.victim(setting.victim), models.defense(setting.defense)
    info = models.info(setting.defense)
    seed_everything(cfg.seed)
    adv, attack_seconds = crafting.craft_share(setting.attack_used, attacked_model(setting, models, cfg.surrogate),
                                               x, y, setting.eps, cfg.seed, cfg.batch_size, dev, cache,
                                               setting.adv_key, progress, group)
    first = cfg.start + share.start
    clean_ok = scoring.repeated_correct(victim, defense, x[share], y[share], cfg.repeats, cfg.seed, cfg.batch_size,
                                        dev, first)
    adv_ok = scoring.repeated_correct(victim, defense, adv, y[share], cfg.repeats, cfg.seed, cfg.batch_size, dev, first)
    max_linf = float(group.all_max([(adv - x[share]).abs().max() if len(adv) else 0.0])[0])
    # timing: rank 0 alone, on an otherwise idle device
    ms = round(scoring.time_defense(defense, x[:cfg.timing_images], dev), 4) if group.is_main else None
    if setting.victim_name in info.trained_against and group.is_main:
        warnings.warn(f"the victim {setting.victim_name!r} is a classifier the {setting.defense!r} defense was "
                      "trained against: its rows are marked 'victim_in_training' (white-box w.r.t. training)",
                      stacklevel=3)
    return with_rates({
        "key": setting.row_key, "victim": setting.victim, "defense": setting.defense,
        "threat_model": setting.threat.name, "attack": setting.attack, "attack_used": setting.attack_used,
        "eps": setting.eps, **common, "repeats": len(clean_ok),
        # the EOT passes actually averaged (the key keeps the setting): none for a deterministic defense, none for
        # AutoAttack 'rand', which runs its own EOT inside APGD
        "eot_samples": setting.eot if setting.eot and setting.eot > 1 and info.randomized else None,
        "crafted_on": setting.crafted_on, "victim_weights": victim.weights_sha256, "defense_weights": info.sha256,
        "victim_in_training": setting.victim_name in info.trained_against,
        **scoring.row_counts(clean_ok, adv_ok, group),
        "attack_seconds": round(attack_seconds, 2), "max_linf": max_linf, "device": str(dev),
        "defense_ms_per_image": group.broadcast(ms)})


def _check_specs_up_front(cfg: EvalConfig, get_defense, get_victim, eps: float, probe: torch.Tensor) -> None:
    """Build every victim and defense, and every attack on a stand-in model, and (for the full-gradient threat
    model) send a gradient through each defense on one image, before any attack runs: a typo or a defense that
    refuses gradients in the last spec is one clear error at once, not after hours of the first rows' attacks."""
    from torch import nn

    from ..attacks.base import build_attack  # (the package's name is the one tests count attack runs with)

    from ..attacks import THREAT_MODELS

    for spec in cfg.victims + ([cfg.surrogate] if cfg.surrogate else []):
        get_victim(spec)
    for spec in cfg.defenses:
        get_defense(spec)
    stand_in = nn.Sequential(nn.Flatten(), nn.Linear(3, 10)).eval()
    for spec in cfg.attacks:
        name, params = parse_spec(spec)
        # the attack as given, and as a threat model may substitute it (e.g. AutoAttack 'rand' for a randomized
        # defense under full-gradient)
        names = {name} | {THREAT_MODELS.get(tm).factory().attack_name(name, get_defense(d))
                          for tm in cfg.threat_models for d in cfg.defenses}
        for attack_name in sorted(names):
            build_attack(attack_name, stand_in, eps=eps, seed=cfg.seed, **params)
    if "full-gradient" in cfg.threat_models:
        for spec in cfg.defenses:
            image = probe.clone().requires_grad_(True)
            try:
                get_defense(spec)(image).sum().backward()
            except InputError as err:
                raise InputError(f"defense {spec!r} cannot be attacked under the full-gradient threat model: "
                                 f"{err}") from err
