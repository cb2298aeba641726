"""Weight files: locate, verify (sha256), load strictly, save atomically with a JSON sidecar."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from ..errors import WeightsError
from ..registry import Registry
from ..utils.io import atomic_write_files, sha256_file


@dataclass(frozen=True)
class PretrainedWeights:
    """A named, checksummed weight file for one architecture (or a whole defense) on one dataset."""

    name: str
    filename: str
    sha256: str
    kind: str  # "classifier" or "defense"
    dataset: str = "cifar10"
    arch: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # mean/std, accuracy, source, licence, command ...
    url: str | None = None  # where users can download it (never needed offline: shipped or cached)
    locate: Callable[[], Path | None] | None = None  # extra place to look, e.g. inside another package


WEIGHTS: Registry[PretrainedWeights] = Registry("weights")


def shipped_dir() -> Path:
    return Path(str(resources.files("irad") / "assets" / "weights"))


def cache_dir() -> Path:
    """``$IRAD_HOME/weights`` or ``~/.cache/irad/weights``: where users put downloaded or converted files."""
    home = os.environ.get("IRAD_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "irad")
    return Path(home) / "weights"


def verify_file(path: Path, sha256: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != sha256:
        raise WeightsError(
            f"{what}: {path} has sha256 {actual[:16]}..., expected {sha256[:16]}...: the file is corrupted, truncated "
            f"or a different version. Delete it and obtain it again (re-install irad, re-download, or re-run the "
            f"training command recorded in its .json sidecar)."
        )


def resolve_weights(name: str) -> tuple[PretrainedWeights, Path]:
    """Find and verify the file of a registered weight set. Looks in the package, then the cache, then
    ``locate()``, then downloads ``url`` into the cache."""
    spec = WEIGHTS.get(name).factory()
    candidates = [shipped_dir() / spec.filename, cache_dir() / spec.filename]
    if spec.locate is not None:
        found = spec.locate()
        if found is not None:
            candidates.append(found)
    for path in candidates:
        if path.is_file():
            verify_file(path, spec.sha256, f"weights {name!r}")
            return spec, path
    if spec.url:
        target = cache_dir() / spec.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(spec.url, str(target), progress=True)
        except Exception as exc:  # noqa: BLE001 - network errors come in many types
            raise WeightsError(
                f"weights {name!r} are not installed and the download from {spec.url} failed ({exc}). "
                f"Download the file by hand and place it at {target}."
            ) from exc
        verify_file(target, spec.sha256, f"weights {name!r}")
        return spec, target
    raise WeightsError(
        f"weights {name!r} ({spec.filename}) not found; looked in {', '.join(str(c) for c in candidates)}. "
        f"Place the file in {cache_dir()} (or set IRAD_HOME)."
    )


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata written next to a weight file (``x.safetensors`` -> ``x.json``); {} when absent."""
    side = Path(path).with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{side} is not valid JSON ({exc}); restore it from the training output") from exc


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or a PyTorch pickle (``.pt``/``.pth``/``.th``).

    Checks the sidecar's sha256 when there is one. Unwraps ``{"state_dict": ...}`` and strips ``module.``
    (DataParallel) prefixes. Pickles are read with ``weights_only=True``; one that holds other Python objects is
    unpickled in full only when its sha256 is in the catalogue (a known third-party checkpoint), since unpickling
    can run arbitrary code; any other such file is a :class:`WeightsError` saying how to convert it.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weight file {str(path)!r} does not exist")
    meta = read_sidecar(path)
    if "sha256" in meta:
        verify_file(path, meta["sha256"], f"weight file {path.name}")
    try:
        if path.suffix == ".safetensors":
            sd: Any = load_file(str(path))
        else:
            sd = _load_pickle(path)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"cannot read weight file {str(path)!r} ({type(exc).__name__}: {exc}); it is corrupted "
                           f"or not a PyTorch/safetensors file") from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def catalogued_checksums() -> set[str]:
    """sha256 of every catalogued weight file and of the third-party originals they are converted from."""
    sums: set[str] = set()
    for name in WEIGHTS.names():
        spec = WEIGHTS.get(name).factory()
        sums.update(s for s in (spec.sha256, spec.meta.get("original_sha256")) if s)
    return sums


def _load_pickle(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``; the full unpickler only for catalogued checkpoints."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"(?:GLOBAL|[Uu]nsupported class) ([\w.]+)", str(exc))
        if found is None:  # not a disallowed object: the file is damaged or not a pickle
            why = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
            raise WeightsError(f"cannot read weight file {str(path)!r} ({why.group(1).strip() if why else exc}); "
                               f"it is corrupted or not a PyTorch/safetensors file") from exc
        if sha256_file(path) in catalogued_checksums():  # a known third-party checkpoint, verified byte for byte
            return torch.load(path, map_location="cpu", weights_only=False)
        raise WeightsError(
            f"{path} contains pickled Python objects besides tensors (e.g. {found.group(1)}). Unpickling "
            f"them can run arbitrary code, so irad does it only for catalogued third-party checkpoints whose sha256 "
            f"it has verified. Convert the file once to safetensors: for registered weights run `irad weights "
            f"import NAME {path}`; for a file you trust, load it yourself with torch.load(path, weights_only=False) "
            f"and write its state dict with irad.weights.save_weights(state_dict, 'name.safetensors', meta)."
        ) from exc


def load_strict(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with an error that lists what does not fit."""
    own = module.state_dict()
    # Old checkpoints predate BatchNorm's ``num_batches_tracked`` counter; it does not affect eval outputs.
    state_dict = {**{k: v for k, v in own.items() if k.endswith("num_batches_tracked")}, **state_dict}
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {shapes[:2]})")
        raise WeightsError(f"{what}: the weights do not fit this architecture: {'; '.join(parts)}. "
                           f"Check the architecture name and dataset (number of classes).")
    module.load_state_dict(state_dict, strict=True)


def save_weights(state_dict: dict[str, torch.Tensor], path: str | os.PathLike, meta: dict[str, Any]) -> str:
    """Write ``path`` (.safetensors) and its JSON sidecar with the file's sha256 atomically (temporary files, then
    ``os.replace``; a failure while writing leaves the old files as they were); return the sha256."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"weights are saved as .safetensors, got {path.name}")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    data = save_safetensors(tensors)
    digest = hashlib.sha256(data).hexdigest()
    sidecar = json.dumps({**meta, "sha256": digest}, indent=2) + "\n"
    # Both files are written in full beside their targets before either is renamed into place.
    atomic_write_files({path: data, path.with_suffix(".json"): sidecar.encode()})
    return digest


def import_weights(name: str, source: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Path:
    """Convert a registered third-party checkpoint (verified against its original sha256) to safetensors.

    The result lands in ``out_dir`` (default: the cache directory), where :func:`resolve_weights` finds it.
    """
    spec = WEIGHTS.get(name).factory()
    source = Path(source)
    expected = spec.meta.get("original_sha256")
    if expected:
        verify_file(source, expected, f"original file for {name!r}")
    sd = load_state_dict_file(source)
    target = Path(out_dir or cache_dir()) / spec.filename
    meta = {k: v for k, v in spec.meta.items() if k not in ("original_sha256",)}
    save_weights(sd, target, {"name": name, "kind": spec.kind, "arch": spec.arch, "dataset": spec.dataset,
                              **meta, "converted_from_sha256": expected})
    return target


def load_defense_weights(arch: str, weights: str | Path | None, dataset: str, train_hint: str
                         ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict and metadata of a trained defense of ``arch`` ("irad", "stl", ...): a registered name, a path, or
    ``None``/"default" for the first registered file for ``dataset`` (else, with a warning, for another dataset).
    ``train_hint`` says how to make one when none is registered."""
    if weights is None or weights == "default":
        candidates = [w for w in (WEIGHTS.get(n).factory() for n in WEIGHTS.names())
                      if w.kind == "defense" and w.arch == arch]
        names = [w.name for w in candidates]
        matching = [w.name for w in candidates if w.dataset == dataset]
        if not matching:
            if not names:
                raise WeightsError(f"no {arch} weights are registered; {train_hint}, then pass weights=PATH")
            warnings.warn(f"no {arch} weights trained on {dataset}; using {names[0]}", stacklevel=3)
            matching = names
        weights = matching[0]
    if isinstance(weights, str) and not Path(weights).suffix:
        spec, path = resolve_weights(weights)
        meta = {**spec.meta, **read_sidecar(path)}
    else:
        path = Path(weights)
        meta = read_sidecar(path)
    if meta.get("arch", arch) != arch:
        raise WeightsError(f"{path} holds {meta.get('kind', '')} weights of arch {meta['arch']!r}, not {arch}; "
                           f"{train_hint}")
    return load_state_dict_file(path), meta
