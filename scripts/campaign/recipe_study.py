#!/usr/bin/env python
"""Training campaign (issue 14), step 2: which recipe of `irad train implicit` learns fastest per CPU second?

Every variant trains the paper's architecture (EDSR-baseline 16 x 64 + MLP 256 x 4) from scratch on the same
ResNet-20 PGD-20 training pairs, on one CPU thread, for the same wall-clock budget, two variants at a time (one per
core, nothing else running). Curves are validation PSNR (200 held-out pairs of ResNet-20 and 200 of ResNet-32, full
32 x 32 images) against ``train_s``, the seconds spent in training steps (validation excluded). Choices are made on
validation only; the test images are never read.

    python scripts/campaign/recipe_study.py run DATA PAIRS_DIR STUDY_DIR [--minutes 10] [--only NAME ...]
    python scripts/campaign/recipe_study.py report STUDY_DIR DOCS_DIR
    python scripts/campaign/recipe_study.py curve RUN_DIR/log.jsonl OUT.png

``run`` resumes: a variant whose folder holds finished weights is skipped, a killed one continues (its
``--time-limit`` then applies to the rest of the run only). ``report`` writes ``DOCS_DIR/recipe-study.{md,png}``
and copies each variant's ``log.jsonl`` and ``command.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: name -> (description, extra arguments of `irad train implicit`, validation every N steps)
VARIANTS: dict[str, tuple[str, list[str], int]] = {
    "shipped": ("whole images, 256 random queries, betas (0, 0.9) [the shipped CPU recipe]",
                ["--queries", "256", "--betas", "0,0.9"], 50),
    "full-q256": ("whole images, 256 random queries, betas (0.9, 0.999)",
                  ["--queries", "256", "--betas", "0.9,0.999"], 50),
    "full": ("whole images, all 1,024 pixels queried, betas (0.9, 0.999)",
             ["--betas", "0.9,0.999"], 30),
    "crop16": ("random 16 x 16 crops, all pixels queried, betas (0.9, 0.999)",
               ["--crop", "16", "--betas", "0.9,0.999"], 120),
    "crop16-b0": ("random 16 x 16 crops, betas (0, 0.9) [the paper's betas]",
                  ["--crop", "16", "--betas", "0,0.9"], 120),
    "crop24": ("random 24 x 24 crops, betas (0.9, 0.999)", ["--crop", "24", "--betas", "0.9,0.999"], 55),
    "crop16-lr1e-4": ("crop16 with lr 1e-4", ["--crop", "16", "--betas", "0.9,0.999", "--lr", "1e-4"], 120),
    "crop16-lr5e-4": ("crop16 with lr 5e-4", ["--crop", "16", "--betas", "0.9,0.999", "--lr", "5e-4"], 120),
    "crop16-b16": ("crop16 with batch 16", ["--crop", "16", "--betas", "0.9,0.999", "--batch-size", "16"], 240),
    "crop16-b64": ("crop16 with batch 64", ["--crop", "16", "--betas", "0.9,0.999", "--batch-size", "64"], 60),
    "crop16-edsr8": ("crop16 with a lighter encoder: 8 residual blocks instead of 16",
                     ["--crop", "16", "--betas", "0.9,0.999", "--encoder-blocks", "8"], 200),
    "crop16-residual": ("crop16, output = input + predicted correction",
                        ["--crop", "16", "--betas", "0.9,0.999", "--residual"], 120),
    # round 2 (after round 1 put crop16-residual first): does the residual output combine with the runner-up changes?
    "crop16-residual-lr5e-4": ("crop16-residual with lr 5e-4",
                               ["--crop", "16", "--betas", "0.9,0.999", "--residual", "--lr", "5e-4"], 120),
    "crop16-residual-b16": ("crop16-residual with batch 16",
                            ["--crop", "16", "--betas", "0.9,0.999", "--residual", "--batch-size", "16"], 240),
}
#: settings every variant shares (a variant's own options come later and win; --crop 0: whole images)
COMMON = ["--task", "adversarial-denoising", "--batch-size", "32", "--lr", "2e-4", "--crop", "0", "--no-residual",
          "--epochs", "100",
          "--val-images", "200", "--checkpoint-every", "1000000", "--seed", "0"]


def command(name: str, data: str, pairs: Path, out: Path, minutes: float) -> list[str]:
    _, extra, val_every = VARIANTS[name]
    return [sys.executable, "-m", "irad", "train", "implicit", *COMMON, *extra, "--val-every", str(val_every),
            "--pairs", str(pairs / "train-resnet20-pgd20"), "--val-pairs", str(pairs / "val-resnet20-pgd20"),
            "--val-pairs", str(pairs / "val-resnet32-pgd20"), "--time-limit", str(minutes), "--device", "cpu",
            "--data", data, "--out", str(out / name)]


def run(args: argparse.Namespace) -> None:
    out = Path(args.study_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in VARIANTS if not args.only or n in args.only]
    todo = [n for n in names if not (out / n / "implicit-adversarial-denoising.safetensors").is_file()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for i in range(0, len(todo), args.parallel):
        group = todo[i:i + args.parallel]
        procs = []
        for name in group:
            (out / name).mkdir(exist_ok=True)
            log = open(out / name / "stdout.txt", "a")
            procs.append(subprocess.Popen(command(name, args.data, Path(args.pairs), out, args.minutes), env=env,
                                          stdout=log, stderr=subprocess.STDOUT))
            print(f"started {name}", flush=True)
        codes = [p.wait() for p in procs]
        for name, code in zip(group, codes):
            print(f"{name}: exit {code}", flush=True)
            if code != 0:
                sys.exit(f"variant {name} failed; see {out / name / 'stdout.txt'}")


def curve(log: Path) -> list[dict]:
    """Validation records of a run's log (train_s, images_seen, val_psnr, ...), in order."""
    return [r for r in map(json.loads, log.read_text().splitlines()) if "val_psnr" in r and "train_s" in r]


def at_time(points: list[dict], key: str, t: float) -> float | None:
    """``key`` linearly interpolated at train_s = t (None if the run was not validated that far)."""
    for a, b in zip(points, points[1:]):
        if a["train_s"] <= t <= b["train_s"]:
            f = (t - a["train_s"]) / max(b["train_s"] - a["train_s"], 1e-9)
            return a[key] + f * (b[key] - a[key])
    return None


def report(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    study, docs = Path(args.study_dir), Path(args.docs_dir)
    docs.mkdir(parents=True, exist_ok=True)
    curves = {n: curve(study / n / "log.jsonl") for n in VARIANTS if (study / n / "log.jsonl").is_file()}
    budget = min(max(p["train_s"] for p in pts) for pts in curves.values() if pts)
    other = "val_psnr@val-resnet32-pgd20"
    rows = []
    for name, pts in curves.items():
        last = pts[-1]
        rows.append((name, at_time(pts, "val_psnr", budget), at_time(pts, other, budget), last["val_psnr"],
                     last[other], last["train_s"], last["images_seen"], last["step"], last["val_input_psnr"]))
    rows.sort(key=lambda r: -(r[1] or 0))
    lines = [f"# Recipe study of `irad train implicit` (issue 14)", "",
             "Paper architecture from scratch, ResNet-20 PGD-20 training pairs (45,000), one CPU thread per run, two "
             "runs at a time on the 2-core CPU. Validation: PSNR of the clamped output against the clean image on "
             "200 held-out pairs (full 32 x 32 images); ResNet-20 pairs (`val`) and pairs of ResNet-32, which "
             "crafts no training pair (`val R32`). The identity scores the input PSNR: "
             f"{rows[0][8]:.2f} dB on `val`. Compared at equal training time: {budget:.0f} s of training steps "
             "(validation excluded), interpolated between validations. Made by "
             "`python scripts/campaign/recipe_study.py run ...` then `... report ...`.", "",
             f"| variant | settings | val @ {budget:.0f} s | val R32 @ {budget:.0f} s | val (last) | val R32 (last) "
             "| train s | crops/images seen | steps |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    for name, v, v32, last, last32, ts, seen, steps, _ in rows:
        lines.append(f"| `{name}` | {VARIANTS[name][0]} | {fmt(v)} | {fmt(v32)} | {last:.2f} | {last32:.2f} | "
                     f"{ts:.0f} | {seen:,} | {steps} |")
    (docs / "recipe-study.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.5))
    colours = plt.cm.tab20.colors
    for i, (name, pts) in enumerate(curves.items()):
        style = {"color": colours[i % len(colours)], "ls": "-" if "residual" in name else "--", "marker": "."}
        for ax, x in zip(axes, ("train_s", "images_seen")):
            ax.plot([p[x] for p in pts], [p["val_psnr"] for p in pts], label=name, **style)
    for ax, label in zip(axes, ("seconds of training steps (1 CPU thread)", "crops / images seen")):
        ax.axhline(rows[0][8], color="k", ls="--", lw=0.8, label="identity (adversarial input)")
        ax.set_xlabel(label)
        ax.set_ylabel("validation PSNR (dB), ResNet-20 PGD-20 pairs")
        ax.set_ylim(max(25.0, rows[0][8] - 4), None)
        ax.grid(alpha=0.3)
    axes[1].set_xscale("log")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(docs / "recipe-study.png", dpi=110)
    for name in curves:
        dest = docs / "recipe-study-logs" / name
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("log.jsonl", "command.txt"):
            shutil.copy(study / name / f, dest / f)
    print("\n".join(lines))


def plot_curve(args: argparse.Namespace) -> None:
    """The learning curve of a run (validation PSNR of every validation folder against images seen); several logs
    draw one curve, each continuing where the previous one ended (a run warm-started from another's weights), with
    a dotted line where each later log begins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    *logs, png = args.logs
    if not logs:
        raise SystemExit("curve: give at least one log.jsonl and the PNG to write")
    points, offset, starts = [], 0, []
    for log in logs:
        run = curve(Path(log))
        if points:
            starts.append(offset)
        points += [{**p, "images_seen": p["images_seen"] + offset} for p in run]
        offset = points[-1]["images_seen"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    keys = [k for k in points[-1] if k.startswith("val_psnr")]
    for key in keys:
        ax.plot([p["images_seen"] for p in points if key in p], [p[key] for p in points if key in p], marker=".",
                label=key.replace("val_psnr@", "") if "@" in key else "val (first folder)")
    ax.axhline(points[-1]["val_input_psnr"], color="k", ls="--", lw=0.8, label="identity (adversarial input)")
    for x in starts:
        ax.axvline(x, color="grey", ls=":", lw=1.0)
    ax.set_xlabel("crops / images seen")
    ax.set_ylabel("validation PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("data")
    p.add_argument("pairs")
    p.add_argument("study_dir")
    p.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget of each variant")
    p.add_argument("--parallel", type=int, default=2, help="variants at a time (one CPU thread each)")
    p.add_argument("--only", nargs="*", default=None)
    p = sub.add_parser("report")
    p.add_argument("study_dir")
    p.add_argument("docs_dir")
    p = sub.add_parser("curve", help="the learning curve of one run's log.jsonl (or of runs continuing one another) "
                                     "as a PNG: curve LOG [LOG ...] PNG")
    p.add_argument("logs", nargs="+", metavar="LOG... PNG")
    args = parser.parse_args()
    {"run": run, "report": report, "curve": plot_curve}[args.cmd](args)


if __name__ == "__main__":
    main()
