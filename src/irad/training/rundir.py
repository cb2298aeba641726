"""A training run's folder: the command that started it, a JSON-lines log, and a resumable checkpoint."""

from __future__ import annotations

import json
import pickle
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..utils.io import atomic_torch_save, atomic_write


class RunDir:
    """``out/command.txt``, ``out/log.jsonl`` (one JSON record per line) and ``out/checkpoint.pt``.

    Under torchrun only rank 0 writes (``writer``, by default whether this process is rank 0); every rank reads
    the checkpoint to resume."""

    def __init__(self, path: str | Path, command: list[str] | None = None, writer: bool | None = None) -> None:
        from .. import distributed

        self.path = Path(path)
        self.writer = distributed.current().is_main if writer is None else writer
        self.log_path = self.path / "log.jsonl"
        self.checkpoint_path = self.path / "checkpoint.pt"
        cmd = command if command is not None else ["irad", *sys.argv[1:]]
        if self.writer:
            self.path.mkdir(parents=True, exist_ok=True)
            with open(self.path / "command.txt", "a") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {shlex.join(cmd)}\n")
        self.command = shlex.join(cmd)

    def log(self, record: dict[str, Any], echo: bool = True) -> None:
        if not self.writer:
            return
        record = {"time": round(time.time(), 1), **record}
        with open(self.log_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if echo:
            from tqdm import tqdm

            tqdm.write("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in record.items() if k != "time"))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        if self.writer:
            atomic_torch_save(state, self.checkpoint_path)

    def load_checkpoint(self) -> dict[str, Any] | None:
        if not self.checkpoint_path.is_file():
            return None
        try:  # tensors, numbers, strings and containers only: unpickling anything else could run code
            return torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
            raise InputError(f"{self.checkpoint_path} is not a checkpoint irad can resume from ({exc}); irad's "
                             f"checkpoints hold tensors and settings only. Move it away to start the run over, or "
                             f"use another --out folder") from exc

    def write_text(self, name: str, text: str) -> None:
        if not self.writer:
            return
        with atomic_write(self.path / name, "w") as fh:
            fh.write(text)
