"""Small helpers shared by test modules (imported as ``helpers``: pytest puts tests/ on the import path)."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner


def invoke(*args: object):
    """Run the ``irad`` command line in-process with ``args`` (as strings); returns click's result."""
    from irad.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def coded_images(ids, size: int = 2) -> np.ndarray:
    """Images whose pixels spell their id: channel 0 = id % 256, channel 1 = id // 256 (so a split can be traced)."""
    ids = np.asarray(ids)
    images = np.zeros((len(ids), size, size, 3), np.uint8)
    images[..., 0] = (ids % 256)[:, None, None]
    images[..., 1] = (ids // 256)[:, None, None]
    return images


def tensors_sha256(path_or_tensors) -> str:
    """The sha256 irad identifies weights by, computed here from its definition: the safetensors serialisation
    (no header metadata) of the file's tensors."""
    import hashlib
    from pathlib import Path

    from safetensors.torch import load_file, save

    tensors = load_file(str(path_or_tensors)) if isinstance(path_or_tensors, (str, Path)) else path_or_tensors
    return hashlib.sha256(save({k: v.contiguous() for k, v in tensors.items()})).hexdigest()


def header_meta(path) -> dict:
    """The ``irad`` JSON object in a safetensors file's header, read with safetensors itself."""
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return json.loads((fh.metadata() or {})["irad"])


def write_legacy_pair(path, tensors: dict, meta: dict) -> str:
    """A weight file of the older two-file format: safetensors without metadata + a ``.json`` sidecar holding
    ``meta`` and the file's sha256 (what irad wrote before the one-file format); returns that sha256."""
    import hashlib
    import json
    from pathlib import Path

    from safetensors.torch import save

    path = Path(path)
    data = save({k: v.contiguous() for k, v in tensors.items()})
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    path.with_suffix(".json").write_text(json.dumps({**meta, "sha256": digest}))
    return digest
