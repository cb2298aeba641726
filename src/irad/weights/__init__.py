"""Named pretrained weights: shipped in the package, found in a cache directory, or downloaded by the user.

Every file is verified by sha256 before it is loaded; a missing, truncated or mismatched file is a
:class:`~irad.errors.WeightsError` that says what to do. A weight file is one self-describing safetensors file
whose header metadata (key ``irad``) holds the architecture spec, normalisation, provenance and the tensors'
sha256; files of the older two-file format (a ``.json`` sidecar) are read, and converted by ``convert_weights``.
"""

from . import catalog as _catalog  # noqa: F401  (registers the named weights)
from .store import (
    WEIGHTS,
    PretrainedWeights,
    cache_dir,
    convert_weights,
    import_weights,
    load_defense_weights,
    load_state_dict_file,
    load_strict,
    read_meta,
    resolve_weights,
    save_weights,
    weights_digest,
)
from .spec import legacy_spec, model_spec

__all__ = [
    "WEIGHTS",
    "PretrainedWeights",
    "cache_dir",
    "convert_weights",
    "import_weights",
    "legacy_spec",
    "load_defense_weights",
    "load_state_dict_file",
    "load_strict",
    "model_spec",
    "read_meta",
    "resolve_weights",
    "save_weights",
    "weights_digest",
]
