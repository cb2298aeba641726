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

import hashlib
import inspect
import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .. import distributed
from ..data import dataset_info, first_batch, load_dataset
from ..defenses import defend, is_randomized
from ..errors import InputError
from ..utils import atomic_save_json, resolve_device, seed_everything
from ..utils.io import atomic_write
from .config import EvalConfig, load_classifier_spec, load_defense_spec, parse_spec, spec_label

ADAPTIVE = ("bpda", "full-gradient")


class ResultStore:
    """``results.json``: config + rows keyed by a stable string; written atomically after each row (by rank 0
    only under torchrun), with how the run ran (``world_size``, ``backend``)."""

    def __init__(self, path: Path, cfg: EvalConfig, group: distributed.Context = distributed.SINGLE) -> None:
        self.path = path
        self.group = group
        self.rows: dict[str, dict[str, Any]] = {}
        if path.is_file():
            data = json.loads(path.read_text())
            self.rows = {r["key"]: r for r in data.get("rows", [])}
        self.cfg = cfg
        self.sanity: list[dict[str, Any]] = []
        self.victims: dict[str, dict[str, Any]] = {}  # spec -> clean accuracy of the bare victim on these images

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def add(self, row: dict[str, Any]) -> None:
        self.rows[row["key"]] = row
        self.save()

    def save(self) -> None:
        if self.group.is_main:
            atomic_save_json({"config": asdict(self.cfg), "rows": list(self.rows.values()), "sanity": self.sanity,
                              "victims": self.victims, **self.group.describe()}, self.path)


def _key(**parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


def _data_digest(x: torch.Tensor, y: torch.Tensor) -> str:
    """A short sha256 of the evaluated images and labels: two data folders with the same dataset name, split and
    range never share cached attacks or result rows."""
    h = hashlib.sha256()
    h.update(x.detach().cpu().contiguous().numpy().tobytes())
    h.update(y.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def _is_correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int, dev,
                seed: int | None = None, first: int = 0) -> np.ndarray:
    """Per image: does ``model`` classify it correctly (in batches of ``bs``). With ``seed``, torch's generators
    are seeded before each batch from (seed, the batch's first image ``first + i``): a randomized model's draws
    then depend on the batch, not on the images evaluated before it (so shares of the images scored by separate
    processes give the numbers of one pass)."""
    out = [np.zeros(0, dtype=bool)]
    for i in range(0, len(x), bs):
        if seed is not None:
            seed_everything(batch_seed(seed, first + i))
        out.append((model(x[i:i + bs].to(dev)).argmax(1).cpu() == y[i:i + bs]).numpy())
    return np.concatenate(out)


def _correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int, dev,
             seed: int | None = None, first: int = 0) -> np.ndarray:
    """:func:`_is_correct` of a defended model (the function evaluation rows are scored with)."""
    return _is_correct(model, x, y, bs, dev, seed, first)


def batch_seed(seed: int, first_image: int) -> int:
    """The seed of the batch starting at image ``first_image`` of a run seeded ``seed``."""
    return int(np.random.SeedSequence([seed % 2**63, first_image]).generate_state(1, np.uint32)[0])


def _time_defense(defense: torch.nn.Module, x: torch.Tensor, dev: torch.device, repeats: int = 5) -> float:
    """Milliseconds per image of the defense alone (median of ``repeats`` runs after a warm-up), separate from
    any attack."""
    from ..bench.timing import time_batch

    return time_batch(defense, x.to(dev), dev, repeats)["ms_per_image"]


class _AdvCache:
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


def _craft(attack_spec: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int,
           bs: int, dev: torch.device, cache: _AdvCache, key: str, progress: bool = False
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


def _craft_share(attack_spec: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int,
                 bs: int, dev: torch.device, cache: _AdvCache, key: str, progress: bool,
                 group: distributed.Context) -> tuple[torch.Tensor, float]:
    """:func:`_craft` on this process's share of the images (``group.share(len(x), bs)``): the adversarial
    examples of the share and the attack's seconds summed over the processes. In one process, the whole of
    :func:`_craft`. Under torchrun each share is cached (and resumed) under its own key; the shares are then
    gathered into the one cache file a one-process run writes and reads."""
    if not group.active:
        return _craft(attack_spec, model, x, y, eps, seed, bs, dev, cache, key, progress)
    from ..attacks import check_adversarial

    share = group.share(len(x), bs)
    hit = cache.get(key)
    if hit is not None:
        check_adversarial(x, hit[0], eps)
        return hit[0][share], hit[1]
    share_key = _key(whole=key, share=[share.start, share.stop])
    if share.stop > share.start:
        adv, seconds = _craft(attack_spec, model, x[share], y[share], eps, seed, bs, dev, cache, share_key,
                              progress and group.is_main)
    else:
        adv, seconds = x[:0].clone(), 0.0
    parts = group.gather((adv, seconds, share_key))
    total = float(sum(p[1] for p in parts))
    if group.is_main:
        cache.put(key, torch.cat([p[0] for p in parts]), total)
        for _, _, k in parts:
            cache.path(k).unlink(missing_ok=True)
    group.barrier()
    return adv, total


def evaluate(cfg: EvalConfig, out: str | Path, data_root=None, device=None, progress: bool = True,
             cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Run (or resume) an evaluation; writes results.json/.csv/.md (+ plots) into ``out``; returns the rows.

    ``cache_dir`` (default ``out/cache``) holds the adversarial examples; point several runs at one folder to share
    attack runs between them. Under torchrun the images are split across the processes (see the module's notes);
    every process returns the same rows, rank 0 writes the files."""
    from ..attacks import THREAT_MODELS

    group, dev = distributed.setup(resolve_device(device))
    progress = progress and group.is_main
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for tm in cfg.threat_models:
        THREAT_MODELS.get(tm)
    if "transfer" in cfg.threat_models and not cfg.surrogate:
        raise InputError("the transfer threat model needs --surrogate NAME (the classifier attacks are crafted on)")
    if cfg.surrogate and "transfer" not in cfg.threat_models:
        raise InputError("--surrogate is used only by the transfer threat model; add --threat-model transfer or drop "
                         "--surrogate")
    if cfg.surrogate and cfg.surrogate in cfg.victims:
        raise InputError(f"the surrogate {cfg.surrogate!r} is also a victim: crafting on the victim itself is the "
                         "oblivious threat model; pick a different surrogate classifier")
    if cfg.start < 0 or cfg.n_images < 1:
        raise InputError(f"image range must have start >= 0 and n_images >= 1, got start={cfg.start}, "
                         f"n_images={cfg.n_images}")
    for name in ("repeats", "eot_samples", "batch_size", "timing_images"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a whole number >= 1, got {value!r}")
    store = ResultStore(out / "results.json", cfg, group)
    cache = _AdvCache(Path(cache_dir) if cache_dir else out / "cache")
    ds = load_dataset(cfg.dataset, cfg.split, root=data_root)
    x_all, y_all = first_batch(ds, cfg.start + cfg.n_images)
    x, y = x_all[cfg.start:], y_all[cfg.start:]
    if len(x) < cfg.n_images:
        raise InputError(f"images {cfg.start}..{cfg.start + cfg.n_images - 1} were asked for, but the {cfg.dataset} "
                         f"{cfg.split!r} split has {len(x_all)} images; lower -n (at most "
                         f"{max(len(x_all) - cfg.start, 0)} from --start {cfg.start})")
    eps_list = cfg.eps or [dataset_info(cfg.dataset).default_eps]
    # batch size belongs to the setting: attacks and randomized defenses draw their randomness per batch
    common = {"dataset": cfg.dataset, "split": cfg.split, "start": cfg.start, "n": len(x), "seed": cfg.seed,
              "images": _data_digest(x, y), "batch_size": cfg.batch_size}
    defenses: dict[str, torch.nn.Module] = {}

    def get_defense(spec: str) -> torch.nn.Module:
        if spec not in defenses:
            defenses[spec] = load_defense_spec(spec, dataset=cfg.dataset, device=dev)
        return defenses[spec]

    share = group.share(len(x), cfg.batch_size)  # this process's images (all of them in one process)

    def score(victim, defense_spec: str, images: torch.Tensor) -> np.ndarray:
        """Per-repeat, per-image correctness (repeats x images of this share, bool): randomized defenses are
        evaluated ``repeats`` times, repeat r under seed ``cfg.seed + 1000 r``, drawn per batch from that seed and
        the batch's first image in the dataset (:func:`batch_seed`), so clean and adversarial images of one repeat
        can be paired, and runs over image ranges that start on batch boundaries merge to one run's numbers."""
        defense = get_defense(defense_spec)
        reps = cfg.repeats if is_randomized(defense) else 1
        correct = []
        for r in range(reps):
            correct.append(_correct(defend(victim, defense), images, y[share], cfg.batch_size, dev,
                                    seed=cfg.seed + 1000 * r, first=cfg.start + share.start))
        return np.stack(correct)

    victims: dict[str, torch.nn.Module] = {}

    def get_victim(spec: str) -> torch.nn.Module:  # victims, and the transfer threat model's surrogate
        if spec not in victims:
            victims[spec] = load_classifier_spec(spec, cfg.dataset, dev)
        return victims[spec]

    _check_specs_up_front(cfg, get_defense, get_victim, eps_list[0], x[:1].to(dev))
    for spec in cfg.victims:  # a wrong normalisation or checkpoint shows here, before any attack runs
        ok = _is_correct(get_victim(spec), x[share], y[share], cfg.batch_size, dev)
        n_ok, n_seen = group.all_sum([ok.sum(), len(ok)])
        store.victims[spec] = {"clean_accuracy": float(n_ok / n_seen), "images": int(n_seen)}
        if progress:
            tqdm.write(f"victim {spec}: clean accuracy {100 * n_ok / n_seen:.1f} % on {int(n_seen)} images "
                       f"(no defense)")
    jobs = [(v, tm, a, e) for v in cfg.victims for tm in cfg.threat_models for a in cfg.attacks for e in eps_list]
    bar = tqdm(total=len(jobs) * len(cfg.defenses), desc="evaluate", disable=not progress)
    surrogate_model = get_victim(cfg.surrogate) if cfg.surrogate else None  # built by the check above
    current_keys: list[str] = []
    for victim_name, tm, attack_spec, eps in jobs:
        victim_n = parse_spec(victim_name)[0]
        victim = get_victim(victim_name)
        threat = THREAT_MODELS.get(tm).factory()
        victim_id = f"{victim_name}@{_short(victim.weights_sha256)}"
        for defense_spec in cfg.defenses:
            defense = get_defense(defense_spec)
            defense_meta = getattr(defense, "meta", {})
            defense_id = f"{defense_spec}@{_short(defense_meta.get('sha256'))}"
            a_name, a_params = parse_spec(attack_spec)
            # e.g. AutoAttack 'rand' (EOT) instead of 'standard' for randomized defenses under full-gradient
            used_attack = spec_label(threat.attack_name(a_name, defense), a_params)
            eot = (threat.eot_samples_for(threat.attack_name(a_name, defense), cfg.eot_samples)
                   if tm in ADAPTIVE else None)
            if tm in ADAPTIVE:
                crafted_on = f"{victim_id}+{defense_id}"
            elif tm == "transfer":
                crafted_on = f"{cfg.surrogate}@{_short(surrogate_model.weights_sha256)}"
            else:
                crafted_on = victim_id
            # Weight checksums are part of the keys: retrained weights never reuse stale rows or cached attacks.
            row_key = _key(victim=victim_id, defense=defense_id, threat_model=tm, attack=attack_spec, eps=eps,
                           repeats=cfg.repeats, eot_samples=eot, crafted_on=crafted_on, **common)
            current_keys.append(row_key)
            bar.update(1)
            if row_key in store:
                continue
            if tm in ADAPTIVE:
                attacked = threat.attacked_model(victim, defense, None, eot_samples=eot)
            elif tm == "transfer":
                attacked = surrogate_model
            else:
                attacked = victim
            adv_key = _key(crafted_on=crafted_on, threat_model=tm if tm in ADAPTIVE else "non-adaptive",
                           attack=used_attack, eps=eps, eot_samples=eot, **common)
            seed_everything(cfg.seed)
            adv, attack_seconds = _craft_share(used_attack, attacked, x, y, eps, cfg.seed, cfg.batch_size, dev,
                                               cache, adv_key, progress, group)
            clean_ok = score(victim, defense_spec, x[share])
            adv_ok = score(victim, defense_spec, adv)
            # ASR: of the (repeat, image) evaluations classified correctly when clean, the share the attack flips;
            # the counts of all processes' shares are summed
            counts = group.all_sum([clean_ok.sum(), adv_ok.sum(), clean_ok.size, adv_ok.all(axis=0).sum(),
                                    clean_ok.all(axis=0).sum(), (clean_ok & ~adv_ok).sum()])
            clean_correct, adv_correct, n_eval, adv_all, clean_all, asr_num = (int(c) for c in counts)
            reps, asr_den = len(clean_ok), clean_correct
            max_linf = float(group.all_max([(adv - x[share]).abs().max() if len(adv) else 0.0])[0])
            # timing: rank 0 alone, on an otherwise idle device
            ms = round(_time_defense(defense, x[:cfg.timing_images], dev), 4) if group.is_main else None
            ms = group.broadcast(ms)
            trained_against = defense_meta.get("trained_against") or []
            if victim_n in trained_against and group.is_main:
                warnings.warn(f"the victim {victim_n!r} is a classifier the {defense_spec!r} defense was trained "
                              "against: its rows are marked 'victim_in_training' (white-box w.r.t. training)",
                              stacklevel=2)
            row = {"key": row_key, "victim": victim_name, "defense": defense_spec, "threat_model": tm,
                   "attack": attack_spec, "attack_used": used_attack, "eps": eps, **common, "repeats": reps,
                   # the EOT passes actually averaged (the key keeps the setting): none for a deterministic defense,
                   # none for AutoAttack 'rand', which runs its own EOT inside APGD
                   "eot_samples": eot if eot and eot > 1 and is_randomized(defense) else None,
                   "crafted_on": crafted_on, "victim_weights": victim.weights_sha256,
                   "defense_weights": defense_meta.get("sha256"),
                   "victim_in_training": victim_n in trained_against,
                   "clean_correct": clean_correct, "adv_correct": adv_correct, "evaluations": n_eval,
                   # worst case over the repeats (AutoAttack's advice for randomized defenses): an image counts as
                   # robust only if every evaluation of it is correct
                   "adv_correct_all": adv_all, "clean_correct_all": clean_all,
                   "asr_num": asr_num, "asr_den": asr_den, "attack_seconds": round(attack_seconds, 2),
                   "max_linf": max_linf, "device": str(dev), "defense_ms_per_image": ms}
            store.add(_with_rates(row))
    bar.close()
    # Report this configuration's rows only; rows of earlier configurations stay in results.json.
    rows = [store.rows[k] for k in current_keys]
    if not group.is_main:  # rank 0 runs the sanity checks (on its own full copy of the images) and writes
        return rows
    store.sanity = sanity_checks(rows, cfg, get_defense, x, y, dev, get_victim)
    store.save()
    from .report import write_reports

    write_reports(rows, out, cfg.paper, store.sanity)
    return rows


def _short(sha256: str | None) -> str:
    return sha256[:12] if sha256 else "-"


def _with_rates(row: dict[str, Any]) -> dict[str, Any]:
    n = row["evaluations"]
    row["SA"] = 100.0 * row["clean_correct"] / n
    row["RA"] = 100.0 * row["adv_correct"] / n
    row["Avg"] = (row["SA"] + row["RA"]) / 2
    row["ASR"] = 100.0 * row["asr_num"] / row["asr_den"] if row["asr_den"] else float("nan")
    for count, rate in (("adv_correct_all", "RA_worst"), ("clean_correct_all", "SA_worst")):
        if row.get(count) is not None:
            row[rate] = 100.0 * row[count] / row["n"]
    return row


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


def sanity_checks(rows, cfg: EvalConfig, get_defense, x, y, dev, get_victim=None) -> list[dict[str, Any]]:
    """Checks reported with every run: adversarial examples lie in the ε-ball, undefended models fall under
    AutoAttack, RA does not rise with ε, gradients through each defense are finite and mostly non-zero (else:
    gradient masking, use BPDA)."""
    from ..attacks import gradient_health
    from ..attacks.checks import check_adversarial

    checks: list[dict[str, Any]] = []
    measured = [r for r in rows if "max_linf" in r]
    if measured:  # every attack is checked (finite, in [0, 1], in the ball) when crafted and when reused from cache
        tol = inspect.signature(check_adversarial).parameters["tol"].default
        excess = max(r["max_linf"] - r["eps"] for r in measured)
        checks.append({"check": f"adversarial examples within the ε-ball (L-inf, up to {tol:g} of float rounding) and "
                                f"in [0, 1]", "rows": len(measured), "max_excess_over_eps": float(excess),
                       "ok": excess <= tol})
    for r in rows:
        if r["defense"] == "none" and r["attack"].startswith("autoattack") and r["threat_model"] == "oblivious":
            ok = r["RA"] <= 2.0
            checks.append({"check": "undefended model falls under AutoAttack", "victim": r["victim"],
                           "eps": r["eps"], "RA": r["RA"], "ok": ok})
    for r in rows:
        if r["defense"] != "none" and r["RA"] > r["SA"] + 100.0 / r["evaluations"]:  # more than one image
            checks.append({"check": "RA not above SA (else the attack is weaker than the defense's own error)",
                           "victim": r["victim"], "defense": r["defense"], "threat_model": r["threat_model"],
                           "SA": r["SA"], "RA": r["RA"], "ok": False,
                           "hint": "the attack's gradients miss the defense (e.g. BPDA's identity backward for a "
                                   "shift); attack it with the full-gradient threat model if it is differentiable"})
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["victim"], r["defense"], r["threat_model"], r["attack"]), []).append(r)
    for key, rs in groups.items():
        if len(rs) > 1:
            rs = sorted(rs, key=lambda r: r["eps"])
            slack = 100.0 / rs[0]["evaluations"]  # one image
            ok = all(b["RA"] <= a["RA"] + slack for a, b in zip(rs, rs[1:]))
            checks.append({"check": "RA does not rise with eps", "group": list(key), "ok": ok})
    probed = [spec for spec in cfg.defenses if spec != "none"]
    if probed:
        victim = (get_victim or (lambda spec: load_classifier_spec(spec, cfg.dataset, dev)))(cfg.victims[0])
    for spec in probed:
        meta = getattr(get_defense(spec), "meta", None) or {}
        done, planned = meta.get("steps_done"), meta.get("steps_planned")
        if done is not None and planned is not None and done < planned:
            checks.append({"check": "the defense's weights come from a finished training run", "defense": spec,
                           "note": f"its training stopped at step {done} of {planned} (a --time-limit): partial "
                                   f"weights; re-run the training command to finish them", "ok": False})
        model = defend(victim, get_defense(spec))
        try:
            health = gradient_health(model, x[:8].to(dev), y[:8].to(dev), warn=False)
        except InputError as err:
            # a defense that refuses gradients (e.g. the real JPEG codec) is a fact, not a failure ("n/a"); any
            # other refusal is a failed check
            refuses_gradients = "not differentiable" in str(err)
            checks.append({"check": "gradients through the defense are finite and non-zero", "defense": spec,
                           "note": (f"not differentiable (only full-gradient attacks need its gradients; "
                                    f"oblivious, transfer and BPDA rows do not): {err}" if refuses_gradients
                                    else f"the gradient probe failed: {err}"),
                           "ok": None if refuses_gradients else False})
            continue
        ok = health["finite"] and health["zero_fraction"] < 0.5
        checks.append({"check": "gradients through the defense are finite and non-zero", "defense": spec, **health,
                       "ok": ok})
        if not ok:
            warnings.warn(f"defense {spec!r}: gradients are {'non-finite' if not health['finite'] else 'mostly zero'}"
                          f" (gradient masking?): full-gradient numbers are not trustworthy; evaluate it with the "
                          f"'bpda' threat model", stacklevel=2)
    if cfg.indicators:
        checks += attack_failure_indicators(rows, cfg, get_defense, get_victim, x, y, dev)
    for c in checks:
        if c["ok"] is False and c["check"] != "gradients through the defense are finite and non-zero":
            warnings.warn(f"sanity check failed: {c}", stacklevel=2)
    return checks


def attack_failure_indicators(rows, cfg: EvalConfig, get_defense, get_victim, x, y, dev) -> list[dict[str, Any]]:
    """:mod:`irad.attacks.indicators` for every (victim, defense, adaptive threat model) of ``rows`` (on
    ``cfg.indicator_images`` images), and the row comparisons: a black-box attack (Square) beating a white-box one,
    full-gradient weaker than BPDA. Each fired indicator also marks its rows (``attack_failure``)."""
    from ..attacks import THREAT_MODELS
    from ..attacks import indicators as ind

    out: list[dict[str, Any]] = []
    fired_for: dict[tuple, list[str]] = {}
    pipelines = sorted({(r["victim"], r["defense"], r["threat_model"], r["eps"]) for r in rows
                        if r["threat_model"] in ADAPTIVE and r["defense"] != "none" and r["defense"] in cfg.defenses
                        and r["victim"] in cfg.victims}) if x is not None else []
    if pipelines:
        xs, ys = x[:cfg.indicator_images].to(dev), y[:cfg.indicator_images].to(dev)
    for victim_spec, defense_spec, tm, eps in pipelines:
        threat = THREAT_MODELS.get(tm).factory()
        attacked = threat.attacked_model(get_victim(victim_spec), get_defense(defense_spec), None,
                                         eot_samples=cfg.eot_samples)
        try:
            found = ind.pipeline_indicators(attacked, xs, ys, eps)
        except InputError as err:  # e.g. a defense without gradients under full-gradient
            out.append({"check": "attack-failure indicators", "victim": victim_spec, "defense": defense_spec,
                        "threat_model": tm, "note": str(err), "ok": None})
            continue
        for i in found:
            out.append({"check": f"attack-failure indicator: {i.name}", "victim": victim_spec,
                        "defense": defense_spec, "threat_model": tm, "eps": eps, "value": i.value,
                        "note": i.message, "ok": None if i.fired is None else not i.fired})
            if i.fired:
                fired_for.setdefault((victim_spec, defense_spec, tm, eps), []).append(i.name)
    by_setting: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_setting.setdefault((r["victim"], r["defense"], r["eps"]), {})[f"{r['threat_model']}|{r['attack']}"] = r
    for (victim_spec, defense_spec, eps), found_rows in by_setting.items():
        for tm in ADAPTIVE:
            white = [r for k, r in found_rows.items() if k.startswith(tm + "|") and "square" not in r["attack"]]
            black = [r for k, r in found_rows.items() if k.startswith(tm + "|") and "square" in r["attack"]]
            if white and black:
                i = ind.black_box_beats_white_box(min(r["RA"] for r in black), min(r["RA"] for r in white),
                                                  slack=100.0 / black[0]["evaluations"])
                out.append({"check": f"attack-failure indicator: {i.name}", "victim": victim_spec,
                            "defense": defense_spec, "threat_model": tm, "note": i.message, "ok": not i.fired})
                if i.fired:
                    fired_for.setdefault((victim_spec, defense_spec, tm, eps), []).append(i.name)
        for attack in {k.split("|", 1)[1] for k in found_rows}:
            full, bp = found_rows.get(f"full-gradient|{attack}"), found_rows.get(f"bpda|{attack}")
            if full and bp:
                i = ind.full_gradient_weaker_than_bpda(full["RA"], bp["RA"], slack=100.0 / full["evaluations"])
                out.append({"check": f"attack-failure indicator: {i.name}", "victim": victim_spec,
                            "defense": defense_spec, "attack": attack, "note": i.message, "ok": not i.fired})
                if i.fired:
                    fired_for.setdefault((victim_spec, defense_spec, "full-gradient", eps), []).append(i.name)
    for r in rows:
        fired = fired_for.get((r["victim"], r["defense"], r["threat_model"], r["eps"]), [])
        if r.get("eot_samples") or "rand" in str(r.get("attack_used", "")):
            # randomness is what EOT answers: a row whose attack averaged over the defense's draws addressed it
            fired = [name for name in fired if name != "randomness"]
        r["attack_failure"] = fired
    return out


def _coalesce(ranges: list[list[int]]) -> list[list[int]]:
    """Sorted inclusive image ranges, adjacent ones joined: [[10, 19], [0, 9], [50, 59]] -> [[0, 19], [50, 59]]."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def merge_results(folders: list[str | Path], out: str | Path) -> list[dict[str, Any]]:
    """Merge runs over disjoint image ranges (e.g. one per GPU/process): counts are summed per setting."""
    from .report import write_reports

    merged: dict[str, dict[str, Any]] = {}
    seen_ranges: dict[str, list[tuple[int, int]]] = {}
    sanity: list[dict[str, Any]] = []
    for folder in folders:
        data = json.loads((Path(folder) / "results.json").read_text())
        sanity += [{**c, "run": str(folder)} for c in data.get("sanity", [])]
        for r in data["rows"]:
            stored = json.loads(r["key"])
            k = _key(**{f: v for f, v in stored.items() if f not in ("start", "n", "images")})
            span = (r["start"], r["start"] + r["n"])
            for a, b, other in seen_ranges.get(k, []):
                if a < span[1] and span[0] < b:
                    raise InputError(f"runs overlap: images {a}..{b - 1} in {other} and {span[0]}..{span[1] - 1} in "
                                     f"{folder} for {r['victim']} / {r['defense']} / {r['threat_model']} / "
                                     f"{r['attack']} / eps {r['eps']}; merge only disjoint image ranges (a folder "
                                     f"re-run with a larger n keeps its older rows in results.json: merge a clean "
                                     f"folder)")
            seen_ranges.setdefault(k, []).append((*span, str(folder)))
            if k not in merged:
                merged[k] = {**{f: v for f, v in r.items() if f != "images"}, "key": k, "start": span[0],
                             "image_ranges": [[span[0], span[1] - 1]]}
                continue
            m = merged[k]
            for f in ("n", "clean_correct", "adv_correct", "evaluations", "asr_num", "asr_den", "attack_seconds"):
                m[f] += r[f]
            for f in ("adv_correct_all", "clean_correct_all"):  # absent from rows of older runs: then unknown
                m[f] = m[f] + r[f] if f in m and f in r else None
            m["start"] = min(m["start"], span[0])
            m["image_ranges"] = _coalesce([*m["image_ranges"], [span[0], span[1] - 1]])
            m["max_linf"] = max(m["max_linf"], r["max_linf"])
    rows = [_with_rates(r) for r in merged.values()]
    looks = [(r["victim"], r["defense"], r["threat_model"], r["attack"], r["eps"]) for r in rows]
    apart = sorted({look for look in looks if looks.count(look) > 1}, key=str)
    apart_note = ""
    if apart:
        listed = "; ".join(" / ".join(map(str, look[:4])) for look in apart)
        apart_note = (f" Rows that look alike were NOT combined, because their runs differ in a setting beyond the "
                      f"image range (repeats, batch size, seed, EOT or weights: the rows' keys in results.json): "
                      f"{listed}.")
        warnings.warn(f"irad evaluate merge: some rows were not combined (their settings differ): {listed}",
                      stacklevel=2)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_save_json({"merged_from": [str(f) for f in folders], "rows": rows, "sanity": sanity},
                     out / "results.json")
    write_reports(rows, out, None, sanity, note=(
        f"Merged from {len(folders)} runs over disjoint image ranges ({', '.join(map(str, folders))}): counts are "
        "summed. Attacks reseed at every batch and randomized defenses are scored under seeds of (repeat, the "
        "batch's first image), so this equals one run over the same images exactly when every run's --start is a "
        "multiple of the batch size; otherwise attacks with a random start and randomized defenses ran the same "
        "protocol with other random draws. The sanity checks are each run's own." + apart_note))
    return rows
