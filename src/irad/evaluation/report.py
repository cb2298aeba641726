"""Write results as Markdown, CSV and JSON, and plot RA vs ε and per-attack bars (the paper's Fig. 4)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..utils.io import atomic_write
from .presets import paper_figures

COLUMNS = ["victim", "defense", "threat_model", "attack", "eps", "n", "repeats", "SA", "RA", "Avg", "ASR",
           "defense_ms_per_image", "attack_seconds", "device"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if abs(v) >= 0.1 or v == 0:
            return f"{v:.2f}"
        return f"{v:.4f}" if abs(v) >= 1e-3 else f"{v:.2g}"  # e.g. a float-rounding excess of 2.8e-08
    return str(v)


def markdown_table(rows: list[dict[str, Any]], preset: str | None = None) -> str:
    cols = [c for c in COLUMNS if c not in ("attack_seconds",)]
    if any(r.get("repeats", 1) > 1 and r.get("RA_worst") is not None for r in rows):  # a randomized defense
        cols.insert(cols.index("Avg"), "RA_worst")
    extra = ["paper SA", "paper RA"] if preset else []
    lines = ["| " + " | ".join(cols + extra) + " |", "|" + "---|" * (len(cols) + len(extra))]
    for r in sorted(rows, key=lambda r: (r["victim"], r["threat_model"], r["attack"], r["eps"])):
        cells = [f"{r['eps'] * 255:.3g}/255" if c == "eps" else "—" if r.get(c) is None else _fmt(r[c])
                 for c in cols]
        used = r.get("attack_used")
        if used and used != r["attack"]:  # e.g. AutoAttack 'rand' on a randomized defense under full-gradient
            cells[cols.index("attack")] += f" (ran {used})"
        if r.get("victim_in_training"):
            cells[0] += " †"
        if r.get("attack_failure"):
            cells[cols.index("RA")] += " ⚠"
        if preset:
            sa, ra = paper_figures(preset, r["defense"], r["attack"], r["threat_model"])
            cells += ["—" if sa is None else f"{sa:.2f}", "—" if ra is None else f"{ra:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if preset:
        lines.append("\nPaper columns: the IRAD paper's figures for the same defense under the preset's own attack and "
                     "threat model (its victim: a WRN-28-10; its purifiers trained at full scale), for orientation; "
                     "— where the paper has none or this row's attack or threat model differs.")
    lines.append("\nColumns: SA: standard accuracy (%, clean images through the defense); RA: robust accuracy "
                 "(%, adversarial images through the defense; for a randomized defense the mean over its repeats); "
                 "RA_worst (randomized defenses): an image counts as robust only if every repeat classifies it "
                 "correctly, the worst case AutoAttack's authors advise; Avg: (SA + RA) / 2; ASR: attack success "
                 "rate (%, of the evaluations correct on the clean image, the share the attack turns wrong); n: "
                 "images; repeats: evaluations of a randomized defense (1 otherwise); defense_ms_per_image: the "
                 "defense alone.")
    if any(r.get("attack_failure") for r in rows):
        lines.append("\n⚠ an attack-failure indicator fired for this pipeline ("
                     + "; ".join(sorted({f"{r['defense']} / {r['threat_model']}: {', '.join(r['attack_failure'])}"
                                         for r in rows if r.get("attack_failure")}))
                     + "): its RA is probably an upper bound from a failed attack; see the sanity checks.")
    if any(r.get("victim_in_training") for r in rows):
        lines.append("\n† the defense was trained against this classifier (its adversarial pairs or SampleNet loss "
                     "used its gradients): such rows are white-box with respect to training; prefer other victims.")
    return "\n".join(lines) + "\n"


THREAT_MODEL_WORDS = {"oblivious": "attacks crafted on the bare victim, then purified",
                      "bpda": "attacks through the defended victim, identity backward through the defense",
                      "full-gradient": "attacks through the defended victim with the defense's true gradients"}


def setting_line(rows: list[dict[str, Any]]) -> str:
    """What every number of a report belongs to: images, seed, threat model(s) and where the attacks were crafted."""
    def images(r: dict[str, Any]) -> str:  # merged runs may cover several ranges
        ranges = r.get("image_ranges") or [[r["start"], r["start"] + r["n"] - 1]]
        return ", ".join(f"{a}..{b}" for a, b in ranges)

    parts = sorted({f"{r.get('dataset', '?')}/{r.get('split', '?')} images {images(r)} (n = {r['n']}), seed "
                    f"{r.get('seed', '?')}" for r in rows})
    threats = []
    for tm in sorted({r["threat_model"] for r in rows}):
        if tm == "transfer":
            on = sorted({str(r.get("crafted_on", "the surrogate")) for r in rows if r["threat_model"] == tm})
            threats.append(f"transfer (attacks crafted on the surrogate {', '.join(on)}, then purified)")
        else:
            eot = sorted({r.get("eot_samples") for r in rows if r["threat_model"] == tm and r.get("eot_samples")})
            eot_note = f"; EOT over {', '.join(map(str, eot))} passes for randomized defenses" if eot else ""
            if any(str(r.get("attack_used")).startswith("autoattack-rand") for r in rows if r["threat_model"] == tm):
                eot_note += "; AutoAttack 'rand' averages its own 20 EOT samples inside APGD"
            threats.append(f"{tm} ({THREAT_MODEL_WORDS.get(tm, tm)}{eot_note})")
    return (f"Setting: {'; '.join(parts)}. Threat model: {'; '.join(threats)}. SA / RA in %; a randomized "
            "defense's figures are the mean over its `repeats` evaluations.")


def write_reports(rows: list[dict[str, Any]], out: Path, preset: str | None, sanity: list[dict[str, Any]],
                  note: str | None = None) -> None:
    out = Path(out)
    md = setting_line(rows) + "\n\n" + markdown_table(rows, preset) if rows else markdown_table(rows, preset)
    if note:
        md += "\n" + note + "\n"
    if sanity:
        md += "\nSanity checks:\n\n" + "\n".join(
            f"- [{'ok' if c['ok'] else 'n/a' if c['ok'] is None else 'FAILED'}] {c['check']}: "
            + ", ".join(f"{k}={_fmt(v)}" for k, v in c.items() if k not in ("check", "ok")) for c in sanity) + "\n"
    with atomic_write(out / "results.md", "w") as fh:
        fh.write(md)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS + ["RA_worst", "SA_worst", "attack_used", "eot_samples",
                                                       "batch_size", "clean_correct", "adv_correct",
                                                       "adv_correct_all", "clean_correct_all", "evaluations", "start",
                                                       "seed", "max_linf", "crafted_on", "victim_in_training"],
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(out / "results.csv", "w") as fh:
        fh.write(buf.getvalue())
    plot_results(rows, out)


def plot_results(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """RA against ε (when several ε were run) and per-attack RA bars per defense (when several attacks were run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    eps_values = sorted({r["eps"] for r in rows})
    if len(eps_values) > 1:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        series: dict[str, list] = {}
        for r in rows:
            series.setdefault(f"{r['defense']} ({r['victim']}, {r['attack']}, {r['threat_model']})", []).append(r)
        for label, rs in sorted(series.items()):
            rs = sorted(rs, key=lambda r: r["eps"])
            ax.plot([r["eps"] * 255 for r in rs], [r["RA"] for r in rs], marker="o", label=label)
        ax.set_xlabel("ε (×1/255)")
        ax.set_ylabel("robust accuracy (%)")
        ax.legend(fontsize=6)
        fig.tight_layout()
        written.append(out / "ra_vs_eps.png")
        _save_figure(fig, written[-1])
        plt.close(fig)
    attacks, bars = per_attack_bars(rows)
    if len(attacks) > 1:
        fig, ax = plt.subplots(figsize=(max(5, len(attacks) * 0.7), 3.5))
        width = 0.8 / len(bars)
        for i, (label, values) in enumerate(bars.items()):
            ax.bar([j + i * width for j in range(len(attacks))], values, width, label=label)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(attacks))], attacks, rotation=45, fontsize=7)
        ax.set_ylabel("robust accuracy (%)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(out / "per_attack.png")
        _save_figure(fig, written[-1])
        plt.close(fig)
    return written


def per_attack_bars(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, list[float]]]:
    """The per-attack bar chart's data: the attacks, and for each series (a defense, plus the victim, threat model
    and ε where the rows have several) one RA per attack, each exactly one row's (NaN, i.e. no bar, where that
    combination was not run). Nothing is averaged across rows."""
    attacks = sorted({r["attack"] for r in rows})
    varying = [k for k in ("victim", "threat_model", "eps", "dataset", "seed")
               if len({str(r.get(k)) for r in rows}) > 1]

    def label(r: dict[str, Any]) -> str:
        parts = [f"ε={r['eps'] * 255:g}/255" if k == "eps" else f"seed {r.get(k)}" if k == "seed"
                 else str(r.get(k)) for k in varying]
        return f"{r['defense']} ({', '.join(parts)})" if parts else str(r["defense"])

    bars: dict[str, list[float]] = {}
    for r in sorted(rows, key=lambda r: (r["defense"], *(r[k] if k == "eps" else str(r.get(k)) for k in varying))):
        bars.setdefault(label(r), [float("nan")] * len(attacks))[attacks.index(r["attack"])] = float(r["RA"])
    return attacks, bars


def _save_figure(fig, path: Path) -> None:
    """PNG written atomically: a kill mid-write leaves the previous plot, not half a file."""
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=150)
