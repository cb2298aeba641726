"""The model spec of a weight file: ``{"name": ..., "args": {...}}`` in its metadata, the registry name and the
constructor arguments that rebuild the network its tensors belong to (as LIIF's checkpoints record theirs).

Every training command writes one (IRAD's is the pair ``{"reconstruction": spec, "sampler": spec}``). Files written
before specs were recorded say the same in older keys (``settings``, ``architecture``, ``num_classes``):
:func:`model_spec` reads those too, and :func:`~irad.weights.convert_weights` writes the spec into such a file once.
"""

from __future__ import annotations

from typing import Any

from ..errors import WeightsError


def legacy_spec(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The spec that a file written before specs were recorded implies through its older keys; None if none."""
    arch, settings = meta.get("arch"), meta.get("settings") or {}
    if meta.get("kind") == "classifier" and arch and "num_classes" in meta:
        return {"name": arch, "args": {"num_classes": int(meta["num_classes"])}}
    if arch == "nrp" and {"width", "blocks"} <= set(settings):
        return {"name": "nrp", "args": {"width": int(settings["width"]), "blocks": int(settings["blocks"])}}
    if arch == "stl" and {"lam", "iterations", "lowpass"} <= set(settings):
        return {"name": "stl", "args": {k: settings[k] for k in ("lam", "iterations", "lowpass")}}
    if arch in (None, "diffpure") and isinstance(meta.get("architecture"), dict):
        return {"name": "score-unet", "args": dict(meta["architecture"])}
    return None


def model_spec(meta: dict[str, Any], name: str, where: str = "the weight file",
               loader: str = "") -> dict[str, Any] | None:
    """The constructor arguments of model ``name`` recorded in ``meta`` (its ``spec``, else what its older keys
    say), or None when the file records neither. Names compare as the registries do, case-insensitively. A spec
    of another model is a :class:`WeightsError`; ``loader`` (e.g. ``load_classifier('{name}', weights=...)``, with
    ``{name}`` standing for the model the file holds) is the fix its message names."""
    spec = meta.get("spec")
    if spec is None or "reconstruction" in spec:  # (IRAD's two-part spec is read by the resampling defenses)
        spec = legacy_spec(meta)
    if spec is None:
        return None
    if not (isinstance(spec, dict) and isinstance(spec.get("name"), str) and isinstance(spec.get("args", {}), dict)):
        raise WeightsError(f"{where}: its 'spec' must be {{'name': str, 'args': {{...}}}}, got {spec!r}; re-create "
                           f"the file with the training command that made it")
    if spec["name"].lower() != name.lower():
        fix = f"load it with {loader.format(name=spec['name'])}" if loader else "load it with the loader of that model"
        raise WeightsError(f"{where} holds a {spec['name']!r} model, not {name!r}; {fix}")
    return dict(spec.get("args", {}))
