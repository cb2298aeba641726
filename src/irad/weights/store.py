"""Weight files: locate, verify (sha256), load strictly, save atomically.

One self-describing format: a safetensors file whose header metadata holds, under the key ``irad``, a JSON object
with everything needed to rebuild and trust the model (its registry spec ``{name, args}`` or architecture, dataset,
normalisation, the training command, and ``sha256``). ``sha256`` is the digest of the tensors (the safetensors
serialisation of the state dict without metadata), so it is the same whatever the metadata says, and the same as
the file digest of the older two-file format (``x.safetensors`` + a ``x.json`` sidecar), which is still read
(never written; `irad weights import FILE` converts such a pair once). Reading never writes.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from ..errors import UnknownNameError, WeightsError
from ..utils.io import atomic_write, sha256_file
from .spec import legacy_spec

#: the header-metadata key of irad's weight files (a JSON object)
META_KEY = "irad"


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


class WeightsCatalog:
    """The named weight files irad knows: data (file name, sha256, provenance), not builders, so a plain mapping
    of names to :class:`PretrainedWeights`. ``WEIGHTS["irad-cifar10-cpu"]``; ``WEIGHTS.add(PretrainedWeights(...))``
    registers a file of yours under a name (then ``load_classifier(arch, weights=NAME)`` and ``irad weights
    verify`` know it)."""

    def __init__(self) -> None:
        self._specs: dict[str, PretrainedWeights] = {}

    def add(self, spec: PretrainedWeights) -> PretrainedWeights:
        key = spec.name.lower()
        if key in self._specs:
            raise WeightsError(f"weights {spec.name!r} are catalogued already; pick another name")
        self._specs[key] = spec
        return spec

    def __getitem__(self, name: str) -> PretrainedWeights:
        key = name.lower() if isinstance(name, str) else name
        if key not in self._specs:
            close = difflib.get_close_matches(str(key), self._specs, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(f"unknown weights {name!r}.{hint} Available: {', '.join(self.names())} "
                                   f"(`irad list weights`)")
        return self._specs[key]

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[PretrainedWeights]:
        return [self._specs[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._specs)


WEIGHTS = WeightsCatalog()


def shipped_dir() -> Path:
    return Path(str(resources.files("irad") / "assets" / "weights"))


def cache_dir() -> Path:
    """``$IRAD_HOME/weights`` or ``~/.cache/irad/weights``: where users put downloaded or converted files."""
    home = os.environ.get("IRAD_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "irad")
    return Path(home) / "weights"


def weights_digest(path: str | os.PathLike) -> str:
    """The sha256 irad identifies a weight file by: for .safetensors the digest of its tensors serialised without
    header metadata (the metadata may change, the weights not), for any other file the digest of its bytes."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return sha256_file(path)
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise WeightsError(f"cannot read weight file {str(path)!r} ({type(exc).__name__}: {exc}); it is corrupted "
                           f"or not a safetensors file") from exc
    return _serialize(tensors)[1]


def verify_file(path: Path, sha256: str, what: str) -> None:
    actual = weights_digest(path)
    if actual != sha256:
        raise WeightsError(
            f"{what}: {path} has sha256 {actual[:16]}..., expected {sha256[:16]}...: the file is corrupted, truncated "
            f"or a different version. Delete it and obtain it again (re-install irad, re-download, or re-run the "
            f"training command recorded in its metadata)."
        )


def resolve_weights(name: str) -> tuple[PretrainedWeights, Path]:
    """Find and verify the file of a registered weight set. Looks in the package, then the cache, then
    ``locate()``, and takes the first copy whose sha256 matches (warning about any corrupt one before it); only when
    there is no copy at all does it download ``url`` into the cache. Every copy corrupt: a :class:`WeightsError`
    naming each."""
    spec = WEIGHTS[name]
    candidates = [shipped_dir() / spec.filename, cache_dir() / spec.filename]
    if spec.locate is not None:
        found = spec.locate()
        if found is not None:
            candidates.append(found)
    corrupt: list[str] = []
    for path in candidates:
        if not path.is_file():
            continue
        try:
            actual = weights_digest(path)
        except WeightsError:
            actual = sha256_file(path)
        if actual != spec.sha256:
            corrupt.append(f"{path} (sha256 {actual[:16]}...)")
            continue
        if corrupt:
            warnings.warn(f"weights {name!r}: skipped {'; '.join(corrupt)}, which does not have the expected sha256 "
                          f"{spec.sha256[:16]}... (corrupted or another version; delete it); using {path}",
                          stacklevel=2)
        return spec, path
    if corrupt:
        raise WeightsError(
            f"weights {name!r}: no copy has the expected sha256 {spec.sha256[:16]}...: {'; '.join(corrupt)}. They "
            f"are corrupted, truncated or a different version. Delete them and obtain the file again (re-install "
            f"irad, `irad weights import {name} FILE`, or place a good copy in {cache_dir()})."
        )
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


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a weight file: the ``irad`` JSON of its safetensors header, else (a file of the older
    two-file format) its ``x.json`` sidecar, read only; {} when there is none. Never writes."""
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        try:
            with safe_open(str(path), framework="pt") as fh:
                header = fh.metadata() or {}
        except Exception as exc:  # noqa: BLE001
            raise WeightsError(f"cannot read weight file {str(path)!r} ({type(exc).__name__}: {exc}); it is "
                               f"corrupted or not a safetensors file") from exc
        if META_KEY in header:
            try:
                meta = json.loads(header[META_KEY])
            except json.JSONDecodeError as exc:
                raise WeightsError(f"{path}: its metadata is not valid JSON ({exc}); re-create the file with the "
                                   f"training command that made it") from exc
            if not isinstance(meta, dict):
                raise WeightsError(f"{path}: its metadata is not a JSON object; re-create the file")
            return meta
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{side} is not valid JSON ({exc}); restore it from the training output") from exc
    return meta if isinstance(meta, dict) else {}


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or a PyTorch pickle (``.pt``/``.pth``/``.th``).

    Checks the sha256 its metadata records, when there is one (:func:`weights_digest`). Unwraps the common checkpoint layouts (``{"state_dict": ...}``,
    ``model``, ``net``, ... :data:`STATE_DICT_KEYS`) and strips ``module.`` (DataParallel) and ``_orig_mod.``
    (torch.compile) prefixes. Pickles are read with ``weights_only=True``; one that holds other Python objects is
    unpickled in full only when its sha256 is in the catalogue (a known third-party checkpoint), since unpickling
    can run arbitrary code; any other such file is a :class:`WeightsError` saying how to convert it.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weight file {str(path)!r} does not exist")
    meta = read_meta(path)
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
    if "sha256" in meta:
        actual = _serialize(sd)[1] if path.suffix == ".safetensors" else sha256_file(path)
        if actual != meta["sha256"]:
            raise WeightsError(
                f"weight file {path.name}: {path} has sha256 {actual[:16]}..., expected {meta['sha256'][:16]}...: the "
                f"file is corrupted, truncated or a different version. Delete it and obtain it again (re-install "
                f"irad, re-download, or re-run the training command recorded in its metadata).")
    sd = unwrap_state_dict(sd, path)
    return {_strip_wrappers(k): v for k, v in sd.items()}


#: keys under which training scripts commonly store the weights in a checkpoint dict
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "state", "weights")


def unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: the dict itself, or the dict under one of :data:`STATE_DICT_KEYS`."""
    for _ in range(2):  # e.g. {"model": {"state_dict": ...}}
        if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in STATE_DICT_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is not None:
                obj = inner
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        keys = list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise WeightsError(f"{path} does not hold a state dict of tensors (top-level keys: {keys}); irad reads a "
                           f"plain state dict or one stored under {', '.join(map(repr, STATE_DICT_KEYS))}")
    return obj


def _strip_wrappers(key: str) -> str:
    """Drop the prefixes that wrappers add to parameter names: ``module.`` (DataParallel / DDP), ``_orig_mod.``
    (torch.compile)."""
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


def catalogued_checksums() -> set[str]:
    """sha256 of every catalogued weight file and of the third-party originals they are converted from."""
    sums: set[str] = set()
    for spec in WEIGHTS.specs():
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
    """Write ``path`` (.safetensors): the tensors, and ``meta`` with their ``sha256`` in the header (one file,
    written atomically: a failure or a kill leaves the previous file as it was). Returns the sha256. A sidecar of
    the older two-file format left beside ``path`` is removed once the new file is in place."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"weights are saved as .safetensors, got {path.name}")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    digest = _serialize(tensors)[1]
    full = {**meta, "sha256": digest}
    data = save_safetensors(tensors, metadata={META_KEY: json.dumps(full, default=_json_default)})
    with atomic_write(path) as fh:
        fh.write(data)
    for stale in (path.with_suffix(".json"), path.with_name(path.stem + ".json.pending")):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    return digest


def _json_default(value: Any) -> Any:
    """Tuples and paths in metadata, as JSON does them (lists, strings)."""
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"metadata value {value!r} ({type(value).__name__}) is not JSON")


def _serialize(state_dict: dict[str, torch.Tensor]) -> tuple[bytes, str]:
    """The safetensors bytes of ``state_dict`` (no header metadata, so equal tensors give equal bytes), sha256."""
    data = save_safetensors({k: v.detach().cpu().contiguous() for k, v in state_dict.items()})
    return data, hashlib.sha256(data).hexdigest()


def convert_weights(path: str | os.PathLike) -> Path:
    """Rewrite an older weight file in place as one self-describing file, its tensors (and so its sha256)
    unchanged and checked: a file of the two-file format (``x.safetensors`` + ``x.json``) takes its sidecar's
    metadata (the sidecar is removed), and a file without a model ``spec`` gets the one its older keys imply
    (:func:`~irad.weights.spec.legacy_spec`). A file that needs neither is left as it is."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".safetensors":
        raise WeightsError(f"{str(path)!r} is not a .safetensors weight file; convert checkpoints of registered "
                           f"weights with `irad weights import NAME FILE`")
    with safe_open(str(path), framework="pt") as fh:
        one_file = META_KEY in (fh.metadata() or {})
    meta = read_meta(path)
    if not meta:
        raise WeightsError(f"{path} has no sidecar {path.with_suffix('.json').name} to take its metadata from; "
                           f"re-create it with the command that trained it")
    spec = None if "spec" in meta else legacy_spec(meta)
    if one_file and spec is None:
        return path
    tensors = load_state_dict_file(path)  # checks the recorded sha256
    save_weights(tensors, path, {**{k: v for k, v in meta.items() if k != "sha256"},
                                 **({"spec": spec} if spec else {})})
    return path


def import_weights(name: str, source: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Path:
    """Install registered weights ``name`` from a file obtained elsewhere, verified against the catalogue before
    anything is written; the result lands in ``out_dir`` (default: the cache directory, where
    :func:`resolve_weights` finds it).

    * Entries stored as safetensors: ``source`` (the third-party original, first checked against the catalogue's
      ``original_sha256`` where it records one, which also guards the unpickling; or any checkpoint of the same
      tensors) is converted, and the converted file must have the catalogue's sha256. The source's own sidecar, if
      any, is carried over.
    * Entries the catalogue names as they are (``resnet18-autoattack``: pyautoattack's ``model_test.pt``, normally
      read in place from the installed package): ``source`` must have the catalogue's sha256 and is copied as is.
    """
    spec = WEIGHTS[name]
    source = Path(source)
    if not spec.sha256:
        raise WeightsError(f"weights {name!r} have no sha256 in the catalogue, so a file for them cannot be "
                           f"verified; irad does not import unverified weights")
    target = Path(out_dir or cache_dir()) / spec.filename
    if target.suffix != ".safetensors":
        data = source.read_bytes()  # verified and written from the same bytes
        _check_import(name, spec, source, hashlib.sha256(data).hexdigest(), "its sha256 is")
        with atomic_write(target) as fh:
            fh.write(data)
        return target
    expected = spec.meta.get("original_sha256")
    if expected:
        verify_file(source, expected, f"original file for {name!r}")
    tensors = load_state_dict_file(source)
    _check_import(name, spec, source, _serialize(tensors)[1], "converted to safetensors, it has sha256")
    meta = {k: v for k, v in spec.meta.items() if k not in ("original_sha256",)}
    side = {k: v for k, v in read_meta(source).items() if k != "sha256"}
    full = {**side, "name": name, "kind": spec.kind, "arch": spec.arch, "dataset": spec.dataset, **meta,
            "converted_from_sha256": expected or sha256_file(source)}
    model = full.get("spec") or legacy_spec(full)
    save_weights(tensors, target, {**full, **({"spec": model} if model else {})})
    return target


def _check_import(name: str, spec: PretrainedWeights, source: Path, digest: str, what: str) -> None:
    """Refuse an imported file whose (converted) sha256 ``digest`` is not the catalogue's, saying where it is from."""
    if digest != spec.sha256:
        origin = spec.meta.get("source") or spec.url or "see `irad list weights`"
        raise WeightsError(
            f"{source} is not the file of weights {name!r}: {what} {digest[:16]}..., the catalogue expects "
            f"{spec.sha256[:16]}... (another checkpoint, version, or a damaged copy). Nothing was written. "
            f"The file comes from: {origin}."
        )


def load_defense_weights(arch: str, weights: str | Path | None, dataset: str, train_hint: str
                         ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict and metadata of a trained defense of ``arch`` ("irad", "stl", ...): a registered name, a path, or
    ``None``/"default" for the first registered file for ``dataset`` (else, with a warning, for another dataset).
    ``train_hint`` says how to make one when none is registered."""
    if weights is None or weights == "default":
        candidates = [w for w in WEIGHTS.specs() if w.kind == "defense" and w.arch == arch]
        names = [w.name for w in candidates]
        matching = [w.name for w in candidates if w.dataset == dataset]
        if not matching:
            if not names:
                raise WeightsError(f"no {arch} weights are registered; {train_hint}, then pass weights=PATH (command "
                                   f"line: --defense {arch}:weights=PATH)")
            warnings.warn(f"no {arch} weights trained on {dataset}; using {names[0]}", stacklevel=3)
            matching = names
        weights = matching[0]
    if isinstance(weights, str) and not Path(weights).suffix:
        spec, path = resolve_weights(weights)
        meta = {**spec.meta, **read_meta(path)}
    else:
        path = Path(weights)
        meta = read_meta(path)
    if meta.get("arch", arch) != arch:
        raise WeightsError(f"{path} holds {meta.get('kind', '')} weights of arch {meta['arch']!r}, not {arch}; "
                           f"{train_hint}")
    return load_state_dict_file(path), meta
