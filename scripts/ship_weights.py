"""Copy a trained weight file (+ sidecar) into the package and its run's command/log into docs/training/.

    python scripts/ship_weights.py RUN_DIR/WEIGHTS.safetensors NAME [EXTRA_RUN_DIR ...]

Prints the sha256 to record in src/irad/weights/catalog.py. Shipped weights must come from the project's own
training commands: the command and the log travel with them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from irad.utils.io import sha256_file


def main() -> None:
    src, name, *extra = sys.argv[1:]
    src = Path(src)
    root = Path(__file__).resolve().parents[1]
    target = root / "src" / "irad" / "assets" / "weights" / f"{name}.safetensors"
    shutil.copyfile(src, target)
    shutil.copyfile(src.with_suffix(".json"), target.with_suffix(".json"))
    logs = root / "docs" / "training" / name
    for run in [src.parent, *map(Path, extra)]:
        dest = logs / run.name
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("command.txt", "log.jsonl", "meta.json"):
            if (run / f).is_file():
                shutil.copyfile(run / f, dest / f)
    print(f"{target}  sha256={sha256_file(target)}  logs={logs}")


if __name__ == "__main__":
    main()
