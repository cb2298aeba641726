"""Running under ``torchrun``: one process per device in PyTorch's own process group (nccl on GPUs, gloo on CPUs).

``torchrun --nproc-per-node N -m irad train implicit ...`` (or ``evaluate``) starts N copies of the command; each
finds its rank in the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``) and
joins the group in :func:`setup`. Outside torchrun everything here is a no-op on a world of one process, so the
training and evaluation code has one path.

Work is split so that the result does not depend on the number of processes: a training step's global batch is
cut into contiguous shares (:meth:`Context.share`) after every random draw of the step was made for the whole
batch, and an evaluation is split on batch boundaries, whose random draws are seeded per batch.
"""

from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .errors import InputError

#: commands that run distributed under torchrun; every other command refuses to run in several processes
DISTRIBUTED_COMMANDS = ("train implicit", "train samplenet", "train classifier", "train pairs", "evaluate")


@dataclass(frozen=True)
class Context:
    """This process's place in the group: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        """More than one process: collectives are needed."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes logs, checkpoints, weights and reports, and shows progress."""
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        """How the run ran, for logs and ``results.json``: ``{"world_size": N, "backend": ...}``."""
        return {"world_size": self.world_size, "backend": self.backend}

    def share(self, n: int, block: int = 1) -> slice:
        """This rank's contiguous part of ``n`` items, cut on multiples of ``block`` (whole batches). Shares differ
        by at most one block; a rank may get nothing when there are fewer blocks than ranks."""
        blocks = -(-n // block)
        lo = self.rank * blocks // self.world_size
        hi = (self.rank + 1) * blocks // self.world_size
        return slice(min(lo * block, n), min(hi * block, n))

    def all_sum(self, values: Any) -> np.ndarray:
        """Element-wise sum over the ranks of ``values`` (numbers), as float64."""
        return self._reduce(values, dist.ReduceOp.SUM)

    def all_max(self, values: Any) -> np.ndarray:
        """Element-wise maximum over the ranks."""
        return self._reduce(values, dist.ReduceOp.MAX)

    def _reduce(self, values: Any, op) -> np.ndarray:
        t = torch.as_tensor(np.asarray(values, dtype=np.float64))
        if self.active:
            t = t.to(self._device())
            dist.all_reduce(t, op=op)
        return t.cpu().numpy()

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on one (a decision all ranks must take together)."""
        return bool(self.all_max([float(flag)])[0] > 0)

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` (picklable), in rank order, on rank 0 (the one that writes); None elsewhere."""
        if not self.active:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")


SINGLE = Context()


def launched() -> bool:
    """Started by torchrun (or another launcher setting ``WORLD_SIZE``) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current() -> Context:
    """The group this process belongs to (a world of one when none was set up)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())),
                   str(dist.get_backend()))


def setup(device: torch.device) -> tuple[Context, torch.device]:
    """Join torchrun's process group if this process was launched by it (once; later calls return the group), and
    return it with this rank's device: ``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per process), and the backend
    is nccl on GPUs, gloo on CPUs. Outside torchrun: a world of one and ``device`` unchanged."""
    if not launched():
        return SINGLE, device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if device.index is None:
            if local_rank >= torch.cuda.device_count():
                raise InputError(f"process {local_rank} on this node has no GPU ({torch.cuda.device_count()} "
                                 f"visible): start at most that many processes per node (--nproc-per-node)")
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        if not dist.is_available():
            raise InputError("this PyTorch build has no torch.distributed; run the command in one process")
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=60))
        atexit.register(_shutdown)
    return current(), device


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def require_single_process(command: str) -> None:
    """Refuse, under torchrun, a command that has no distributed version (it would run N times side by side)."""
    if launched():
        raise InputError(f"`irad {command}` runs in one process; under torchrun only "
                         f"{', '.join('irad ' + c for c in DISTRIBUTED_COMMANDS)} are distributed. Start it "
                         f"without torchrun")
