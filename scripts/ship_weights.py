"""Copy a trained weight file (one self-describing file; an older file with a .json sidecar is converted) into the package and its run's command/log into docs/training/.

    python scripts/ship_weights.py RUN_DIR/WEIGHTS.safetensors NAME [EXTRA_RUN_DIR ...]

Prints the sha256 (of the tensors) to record in src/irad/weights/catalog.py. Shipped weights must come from the project's own
training commands: the command and the log travel with them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from irad.weights import convert_weights, weights_digest


def main() -> None:
    src, name, *extra = sys.argv[1:]
    src = Path(src)
    root = Path(__file__).resolve().parents[1]
    target = root / "src" / "irad" / "assets" / "weights" / f"{name}.safetensors"
    shutil.copyfile(src, target)
    if src.with_suffix(".json").is_file():  # the older two-file format: carried over, then made one file
        shutil.copyfile(src.with_suffix(".json"), target.with_suffix(".json"))
    convert_weights(target)
    logs = root / "docs" / "training" / name
    for run in [src.parent, *map(Path, extra)]:
        dest = logs / run.name
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("command.txt", "log.jsonl", "meta.json"):
            if (run / f).is_file():
                shutil.copyfile(run / f, dest / f)
    print(f"{target}  sha256={weights_digest(target)}  logs={logs}")


if __name__ == "__main__":
    main()
