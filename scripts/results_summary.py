"""Condense the folders written by scripts/readme_tables.sh into the README's tables (one row per defense, one
"SA / RA" column per victim, the paper's CIFAR-10 figures last).

    python scripts/results_summary.py [RESULTS_DIR]  > docs/results.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from irad.evaluation.presets import paper_figures

TITLES = {
    "table2": "Table 2: oblivious AutoAttack (standard), ε = 8/255",
    "table2-r18": "Table 2 on the ResNet-18 victim",
    "table8": "Table 8: sampling ablation (implicit reconstruction), oblivious AutoAttack",
    "table1": "Table 1: naive resampling, oblivious AutoAttack",
    "table15": "Table 15: SampleNet with other reconstructions (IRAD's SampleNet transferred), oblivious AutoAttack",
    "table3": "Table 3: adaptive BPDA, PGD-20 (EOT over 8 passes for randomized defenses)",
    "table5": "Table 5: full-gradient AutoAttack through the whole pipeline",
    "table5-naive": "Full-gradient AutoAttack on the naive shifts",
    "table2-nrp": "Table 2, NRP (purifier trained by `irad train nrp`, reduced CPU scale)",
    "table3-nrp": "Table 3, NRP under BPDA",
    "table2-diffpure": "Table 2, DiffPure and IRAD+DiffPure (score model trained by `irad train diffusion`, reduced "
                       "CPU scale), oblivious AutoAttack",
    "table7": "Table 7: training task of the implicit representation (scripts/table7.sh: 4-block encoder, 2 epochs "
              "on 3,000 images per task), oblivious AutoAttack",
}
TITLES["table5-diffpure-t-star-0-02-steps-20"] = "Full-gradient PGD-10 (EOT 4) through DiffPure, t = 20"
TITLES["table5-irad-diffpure"] = "Full-gradient PGD-10 (EOT 4) through IRAD+DiffPure, t = 20"
TITLES["table3-diffpure-t-star-0-02-steps-20"] = "BPDA PGD-20 (EOT 8) on DiffPure, t = 20"
TITLES["table3-irad-diffpure"] = "BPDA PGD-20 (EOT 8) on IRAD+DiffPure, t = 20"
TITLES["table3-diffpure-100"] = "BPDA PGD-20 (EOT 8) on DiffPure, t* = 0.1, 100 steps"
TITLES["table5-diffpure-100"] = "Full-gradient PGD-10 (EOT 4) through DiffPure, t* = 0.1, 100 steps"
TITLES["table16-diffpure-t-star-0-04-steps-40"] = "Table 16, full-gradient PGD-10 (EOT 4) through DiffPure, t = 40"
TITLES["table16-irad-diffpure-t-star-0-04-steps-40"] = ("Table 16, full-gradient PGD-10 (EOT 4) through "
                                                        "IRAD+DiffPure, t = 40")
TITLES["table16-diffpure-t-star-0-03-steps-30"] = "Table 16, full-gradient PGD-10 (EOT 4) through DiffPure, t = 30"
TITLES["table16-irad-diffpure-t-star-0-03-steps-30"] = ("Table 16, full-gradient PGD-10 (EOT 4) through "
                                                        "IRAD+DiffPure, t = 30")
TITLES["bf16"] = "IRAD in fp32 and in bf16 autocast (oblivious AutoAttack)"
PRESET = {"table3-diffpure-t-star-0-02-steps-20": "table3", "table3-irad-diffpure": "table3",
          "table3-diffpure-100": "table3", "table5-diffpure-100": "table5",
          "table16-diffpure-t-star-0-04-steps-40": None, "table16-irad-diffpure-t-star-0-04-steps-40": None,
          "table16-diffpure-t-star-0-03-steps-30": None, "table16-irad-diffpure-t-star-0-03-steps-30": None,
          "table5-diffpure-t-star-0-02-steps-20": "table5", "table5-irad-diffpure": "table5", "bf16": "table2", "table2-r18": "table2", "table5-naive": "table5", "table1": None, "table2-nrp": "table2",
          "table3-nrp": "table3", "table2-diffpure": "table2", "table7": None}


# Rows re-measured later in their own folder replace the same (victim, defense) rows of a table: random resizing
# and padding has been drawn per image since session 5 (one draw per batch before).
OVERRIDES = {"table2": "table2-randomization", "table3": "table3-randomization"}


def _rows(folder: Path) -> tuple[list[dict], dict, str | None]:
    """The rows of ``folder`` with those of its override folder (if it has one and it exists) swapped in, its
    results.json, and the override folder's name when one was used."""
    data = json.loads((folder / "results.json").read_text())
    rows = data["rows"]
    newer = folder.parent / OVERRIDES.get(folder.name, "-") / "results.json"
    if newer.is_file():
        fresh = json.loads(newer.read_text())["rows"]
        replaced = {(r["victim"], r["defense"]) for r in fresh}
        rows = [r for r in rows if (r["victim"], r["defense"]) not in replaced] + fresh
        return rows, data, newer.parent.name
    return rows, data, None


def summarise(folder: Path) -> str:
    rows, data, override = _rows(folder)
    preset = PRESET.get(folder.name, folder.name)
    victims = sorted({r["victim"] for r in rows}, key=lambda v: (v != "resnet32", v))
    defenses = list(dict.fromkeys(r["defense"] for r in rows))
    marked = {r["victim"] for r in rows if r.get("victim_in_training")}
    head = [f"{v}{' †' if v in marked else ''} SA / RA" for v in victims]
    lines = ["| defense | " + " | ".join(head) + " | paper SA / RA |", "|---" * (len(victims) + 2) + "|"]
    for d in defenses:
        cells = []
        for v in victims:
            match = [r for r in rows if r["victim"] == v and r["defense"] == d]
            cells.append(" ; ".join(f"{r['SA']:.1f} / {r['RA']:.1f}" for r in match) or "—")
        # only beside rows measured with the preset's own attack and threat model
        sa, ra = paper_figures(preset, d, rows[0]["attack"], rows[0]["threat_model"]) if preset else (None, None)
        lines.append(f"| `{d}` | " + " | ".join(cells) + f" | {'—' if sa is None else f'{sa:.2f} / {ra:.2f}'} |")
    any_row = rows[0]
    n = sorted({r["n"] for r in rows})
    note = (f"\n{any_row['dataset']}/{any_row['split']} images {any_row['start']}..{any_row['start'] + n[-1] - 1} "
            f"(n = {', '.join(map(str, n))}), seed {any_row['seed']}, attack `{any_row['attack_used']}`, threat model "
            f"`{any_row['threat_model']}`; randomized defenses averaged over {max(r['repeats'] for r in rows)} "
            f"evaluations. Device: {any_row['device']}.")
    if override:
        note += (f" The `randomization` rows come from `{override}` (re-run with one random draw per "
                 "image, the implementation since session 5).")
    if marked:
        note += (" † the shipped IRAD was trained against this victim (its PGD pairs and SampleNet loss used its "
                 "gradients): white-box with respect to training.")
    # a defense that is not differentiable is a fact, not a failed check ("ok": None; older runs wrote False)
    failed = [c for c in data.get("sanity", [])
              if c["ok"] is False and not str(c.get("note", "")).startswith("not differentiable")]
    if failed:
        note += " Sanity flags: " + "; ".join(
            f"{c['check']} ({c.get('defense') or c.get('victim')}"
            + (f", {c['victim']}" if c.get("defense") and c.get("victim") else "") + ")" for c in failed) + "."
    return "\n".join(lines) + "\n" + note + "\n"


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
    print("Every table below is one run of `scripts/readme_tables.sh STEP` on the project's 2-core CPU (its "
          "setting in the note under it), condensed by `python scripts/results_summary.py results`. The runs were "
          "made over several sessions; the README's Results section says which session measured which table and "
          "which were not re-measured since.\n")
    for name, title in TITLES.items():
        if (root / name / "results.json").is_file():
            print(f"#### {title}\n\n{summarise(root / name)}")
    text = "\n".join(f.read_text().strip() for f in (root / "timings.txt", root / "timings-partial.txt")
                     if f.is_file())
    if text:
        print("Wall times (2-core CPU shared by 2-3 runs, one thread each):\n\n```\n" + text + "\n```")


if __name__ == "__main__":
    main()
