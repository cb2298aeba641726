"""Named pretrained weights: shipped in the package, found in a cache directory, or downloaded by the user.

Every file is verified by sha256 before it is loaded; a missing, truncated or mismatched file is a
:class:`~irad.errors.WeightsError` that says what to do. Weight files are safetensors with a JSON sidecar
(``name.safetensors`` + ``name.json``) holding the architecture spec, normalisation, provenance and checksum.
"""

from . import catalog as _catalog  # noqa: F401  (registers the named weights)
from .store import (
    WEIGHTS,
    PretrainedWeights,
    cache_dir,
    import_weights,
    load_defense_weights,
    load_state_dict_file,
    load_strict,
    read_sidecar,
    resolve_weights,
    save_weights,
)

__all__ = [
    "WEIGHTS",
    "PretrainedWeights",
    "cache_dir",
    "import_weights",
    "load_defense_weights",
    "load_state_dict_file",
    "load_strict",
    "read_sidecar",
    "resolve_weights",
    "save_weights",
]
