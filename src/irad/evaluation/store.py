"""Result rows: keys, ``results.json`` (written atomically after each row), rates from counts, and merges of runs
over disjoint image ranges."""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .. import distributed
from ..errors import InputError
from ..utils import atomic_save_json
from .config import EvalConfig


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


def setting_key(**parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


def data_digest(x: torch.Tensor, y: torch.Tensor) -> str:
    """A short sha256 of the evaluated images and labels: two data folders with the same dataset name, split and
    range never share cached attacks or result rows."""
    h = hashlib.sha256()
    h.update(x.detach().cpu().contiguous().numpy().tobytes())
    h.update(y.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def with_rates(row: dict[str, Any]) -> dict[str, Any]:
    n = row["evaluations"]
    row["SA"] = 100.0 * row["clean_correct"] / n
    row["RA"] = 100.0 * row["adv_correct"] / n
    row["Avg"] = (row["SA"] + row["RA"]) / 2
    row["ASR"] = 100.0 * row["asr_num"] / row["asr_den"] if row["asr_den"] else float("nan")
    for count, rate in (("adv_correct_all", "RA_worst"), ("clean_correct_all", "SA_worst")):
        if row.get(count) is not None:
            row[rate] = 100.0 * row[count] / row["n"]
    return row


def coalesce(ranges: list[list[int]]) -> list[list[int]]:
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
            k = setting_key(**{f: v for f, v in stored.items() if f not in ("start", "n", "images")})
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
            m["image_ranges"] = coalesce([*m["image_ranges"], [span[0], span[1] - 1]])
            m["max_linf"] = max(m["max_linf"], r["max_linf"])
    rows = [with_rates(r) for r in merged.values()]
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
