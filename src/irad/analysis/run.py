"""``irad analyze``: Tables 17-19 and Figs. 2, 5-8 of App. A.7-A.9 for any defenses x victim x attack.

Threat model: oblivious (the attack sees the bare victim; its adversarial examples are then purified), as in the
paper's analysis. Images: ``n_images`` of the split from ``start`` (Tables 17 and 19, the case panels) and up to
``n_images`` of one class (``feature_class``, Table 18 and Fig. 5, whose clean features define the centre).
Every adversarial example is checked to lie in the ε-ball and [0, 1]. Outputs go to ``out``: ``analysis.{md,csv,
json}`` and PNG figures, each written atomically; adversarial examples are kept in ``adversarial-*.npz`` and
reused by a rerun with the same settings.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .. import metrics
from ..data import ImageDataset, load_dataset
from ..errors import DataError, InputError
from ..utils import atomic_save_json, resolve_device, seed_everything
from ..utils.io import atomic_write
from . import features as feat

PARTS = ("quality", "features", "paths", "figures")


@dataclass
class AnalysisConfig:
    victim: str = "resnet32"
    defenses: list[str] = field(default_factory=lambda: ["disco", "irad"])
    attack: str = "autoattack"
    eps: float = 8 / 255
    dataset: str = "cifar10"
    split: str = "test"
    n_images: int = 100
    start: int = 0
    feature_class: int = 0
    cases: int = 4
    seed: int = 0
    batch_size: int = 100
    parts: list[str] = field(default_factory=lambda: list(PARTS))


@dataclass
class _Set:
    """One image set: clean images, labels, their adversarial versions, and each defense's outputs."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    adv: torch.Tensor
    purified: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # defense -> {"adv", "clean"}


def _batched(fn, x: torch.Tensor, bs: int, dev) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i:i + bs].to(dev)).cpu() for i in range(0, len(x), bs)])


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _adversarial(cfg: AnalysisConfig, victim, x: torch.Tensor, y: torch.Tensor, out: Path,
                 dev) -> tuple[torch.Tensor, Path]:
    """The attack's adversarial examples of (x, y) against the bare victim, and the file in ``out`` caching them."""
    from ..attacks import build_attack, check_adversarial
    from ..evaluation.config import parse_spec

    key = json.dumps({"victim": cfg.victim, "attack": cfg.attack, "eps": cfg.eps, "seed": cfg.seed,
                      "data": _digest(x, y), "batch_size": cfg.batch_size}, sort_keys=True)
    path = out / f"adversarial-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
    if path.is_file():
        with np.load(path) as f:
            if str(f["key"]) == key:
                adv = torch.from_numpy(f["adv"])
                check_adversarial(x, adv, cfg.eps)
                return adv, path
    name, params = parse_spec(cfg.attack)
    attack = build_attack(name, victim, eps=cfg.eps, seed=cfg.seed, **params)
    advs = [attack(x[i:i + cfg.batch_size].to(dev), y[i:i + cfg.batch_size].to(dev)).cpu()
            for i in tqdm(range(0, len(x), cfg.batch_size), desc=f"attack {cfg.attack}", leave=False)]
    adv = torch.cat(advs)
    check_adversarial(x, adv, cfg.eps)
    with atomic_write(path) as fh:
        np.savez(fh, key=np.array(key), adv=adv.numpy())
    return adv, path


def _class_images(ds: ImageDataset, cls: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = np.flatnonzero(ds.labels == cls)[:n]
    if len(idx) == 0:
        raise DataError(f"no image of class {cls} in the {ds.name} split; pick --feature-class from the labels present")
    sub = ds.subset(idx.tolist())
    return sub.tensors()


def _quality_rows(s: _Set, victim, cfg: AnalysisConfig, dev, notes: list[str]) -> list[dict[str, Any]]:
    images = {"Adv": s.adv}
    for d, outs in s.purified.items():
        images[f"{d}(Adv)"] = outs["adv"]
        images[f"{d}(Clean)"] = outs["clean"]
    lpips_ok = True
    rows = []
    for label, img in images.items():
        low, high = metrics.fft_band_losses(img, s.x)
        row = {"image": label, "psnr": float(metrics.psnr(img, s.x).mean()),
               "ssim": float(metrics.ssim(img, s.x).mean()), "fft_low": float(low.mean()),
               "fft_high": float(high.mean()), "lpips": None,
               "victim_accuracy": float((_batched(victim, img, cfg.batch_size, dev).argmax(1) == s.y).float().mean())}
        if lpips_ok:
            try:
                row["lpips"] = float(metrics.lpips_distance(img, s.x).mean())
            except metrics.MetricUnavailable as exc:
                lpips_ok = False
                notes.append(f"LPIPS not computed: {exc}")
        rows.append(row)
    return rows


def _feature_rows(s: _Set, victim, cfg: AnalysisConfig, dev) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    fs = {"Clean": feat.penultimate_features(victim, s.x.to(dev), cfg.batch_size),
          "Adv": feat.penultimate_features(victim, s.adv.to(dev), cfg.batch_size)}
    for d, outs in s.purified.items():
        fs[f"{d}(Adv)"] = feat.penultimate_features(victim, outs["adv"].to(dev), cfg.batch_size)
    centre = fs["Clean"].mean(0)
    rows = []
    for label, f in fs.items():
        dist = feat.distances_to_centre(f, centre)
        rows.append({"image": label, "distance_mean": float(dist.mean()), "distance_std": float(dist.std()),
                     "images": len(f)})
    return rows, fs


def _path_rows(s: _Set, victim, cfg: AnalysisConfig, dev) -> list[dict[str, Any]]:
    clean = feat.decision_paths(victim, s.x.to(dev), s.y, cfg.batch_size)
    sets = {"Adv": s.adv, **{f"{d}(Adv)": outs["adv"] for d, outs in s.purified.items()}}
    rows = []
    for label, img in sets.items():
        sim = feat.cosine_similarity(feat.decision_paths(victim, img.to(dev), s.y, cfg.batch_size), clean)
        rows.append({"image": label, "path_cosine_mean": float(sim.mean()), "path_cosine_std": float(sim.std())})
    return rows


def analyze(cfg: AnalysisConfig, out: str | Path, data_root=None, device=None, progress: bool = True
            ) -> dict[str, Any]:
    """Run the analysis; returns (and writes to ``out``) the tables, notes and figure paths."""
    from ..evaluation.config import load_classifier_spec, load_defense_spec

    unknown = sorted(set(cfg.parts) - set(PARTS))
    if unknown:
        raise InputError(f"unknown analysis part(s) {unknown}; choose from {', '.join(PARTS)}")
    if cfg.n_images < 1 or cfg.batch_size < 1:
        raise InputError("n_images and batch_size must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    seed_everything(cfg.seed)
    ds = load_dataset(cfg.dataset, cfg.split, root=data_root)
    if not isinstance(ds, ImageDataset):
        raise DataError("irad analyze needs an in-memory dataset (.npz, CIFAR or small-image folders)")
    if cfg.start >= len(ds):
        raise InputError(f"--start {cfg.start} is past the end of the {len(ds)}-image split")
    victim = load_classifier_spec(cfg.victim, cfg.dataset, dev).eval()
    defenses = {spec: load_defense_spec(spec, dataset=cfg.dataset, device=dev).eval() for spec in cfg.defenses}
    x, y = ds.tensors(cfg.n_images, cfg.start)
    sets = {"main": (x, y)}
    if "features" in cfg.parts:
        sets["class"] = _class_images(ds, cfg.feature_class, cfg.n_images)
    data: dict[str, _Set] = {}
    adv_files: dict[str, str] = {}
    for name, (xs, ys) in sets.items():
        adv, adv_path = _adversarial(cfg, victim, xs, ys, out, dev)
        adv_files[name] = str(adv_path)
        s = _Set(name, xs, ys, adv)
        for spec, defense in defenses.items():
            seed_everything(cfg.seed)  # randomized defenses: one seeded draw
            s.purified[spec] = {"adv": _batched(defense, s.adv, cfg.batch_size, dev),
                                "clean": _batched(defense, s.x, cfg.batch_size, dev)}
        data[name] = s
    notes: list[str] = []
    result: dict[str, Any] = {"config": asdict(cfg), "threat_model": "oblivious", "notes": notes,
                              "images": {"main": len(x), "class": len(sets["class"][0]) if "class" in sets else 0},
                              "adversarial_files": adv_files}
    parts = tqdm(cfg.parts, desc="analysis", disable=not progress)
    figures: dict[str, str] = {}
    class_features = None
    for part in parts:
        parts.set_postfix_str(part)
        if part == "quality":
            result["quality"] = _quality_rows(data["main"], victim, cfg, dev, notes)
        elif part == "features":
            result["features"], class_features = _feature_rows(data["class"], victim, cfg, dev)
        elif part == "paths":
            result["paths"] = _path_rows(data["main"], victim, cfg, dev)
        elif part == "figures":
            from . import figures as figs

            figures.update(figs.write_all(data["main"], victim, defenses, class_features, cfg, out, dev))
    result["figures"] = figures
    write_tables(result, out)
    return result


TABLES = {
    "quality": ("Table 17: image quality against the clean image", [
        ("image", "image"), ("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("fft_low", "low-freq FFT loss"),
        ("fft_high", "high-freq FFT loss"), ("lpips", "LPIPS"), ("victim_accuracy", "victim accuracy")]),
    "features": ("Table 18: distance of penultimate features to the centre of the clean features of one class", [
        ("image", "image"), ("distance_mean", "mean distance"), ("distance_std", "std"), ("images", "images")]),
    "paths": ("Table 19: cosine similarity of decision paths to the clean image's", [
        ("image", "image"), ("path_cosine_mean", "mean cosine similarity"), ("path_cosine_std", "std")]),
}


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [f"# irad analyze: victim `{cfg['victim']}`, attack `{cfg['attack']}` (ε = {cfg['eps']:.4g}, oblivious), "
             f"seed {cfg['seed']}", "",
             f"Images: {result['images']['main']} of {cfg['dataset']} `{cfg['split']}` from index {cfg['start']} "
             "(Tables 17, 19)" + (f"; {result['images']['class']} of class {cfg['feature_class']} (Table 18, Fig. 5)"
                                  if result['images']['class'] else "") + ". "
             "`D(Adv)`: defense D applied to the adversarial images; `D(Clean)`: to the clean ones. FFT losses: "
             "mean |ΔFFT| (orthonormal 2-D DFT) at radial frequency ≤ 0.25 cycles/pixel (low) and above (high).", ""]
    for key, (title, cols) in TABLES.items():
        if key not in result:
            continue
        lines += [f"## {title}", "", "| " + " | ".join(c for _, c in cols) + " |",
                  "|" + " --- |" * len(cols)]
        lines += ["| " + " | ".join(_fmt(r[k]) for k, _ in cols) + " |" for r in result[key]]
        lines.append("")
    if result["notes"]:
        lines += ["Notes:", *[f"- {n}" for n in result["notes"]], ""]
    if result.get("figures"):
        lines += ["Figures: " + ", ".join(f"[{k}]({Path(v).name})" for k, v in result["figures"].items()), ""]
    return "\n".join(lines)


def write_tables(result: dict[str, Any], out: Path) -> None:
    atomic_save_json(result, out / "analysis.json")
    with atomic_write(out / "analysis.md", "w") as fh:
        fh.write(markdown(result))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["table", "image", "metric", "value"])
    for key in TABLES:
        for row in result.get(key, []):
            for metric, value in row.items():
                if metric != "image":
                    writer.writerow([key, row["image"], metric, "" if value is None else value])
    with atomic_write(out / "analysis.csv", "w") as fh:
        fh.write(buf.getvalue())
