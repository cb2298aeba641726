"""Resampling defenses: the naive IR variants of §3.2, DISCO-style implicit reconstruction, and IRAD (§4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..reconstruction import RECONSTRUCTIONS, ImplicitReconstruction
from ..resampling import ImageResampler
from ..sampling import SAMPLERS, SampleNet
from ..weights import load_defense_weights, load_strict
from ..errors import InputError, WeightsError
from .registry import DEFENSES, check_params, param_names


def _naive(recon: str, sampler: str, **params: Any) -> ImageResampler:
    return ImageResampler(RECONSTRUCTIONS.build(recon), SAMPLERS.build(sampler, **params))


@DEFENSES.register("nearest-si")
def nearest_si(d: float = 1.5) -> ImageResampler:
    """IR(nea, SAMPLER(d)): nearest reconstruction, spatially invariant shift d (Eq. 6 + 7)."""
    return _naive("nearest", "si", d=d)


@DEFENSES.register("nearest-sv")
def nearest_sv(gamma: float = 1.5, seed: int | None = None) -> ImageResampler:
    """IR(nea, SAMPLER(γ)): nearest reconstruction, random per-pixel shift U(0, γ) (Eq. 6 + 8); randomised."""
    return _naive("nearest", "sv", gamma=gamma, seed=seed)


@DEFENSES.register("bilinear-si")
def bilinear_si(d: float = 1.5) -> ImageResampler:
    """IR(bil, SAMPLER(d)): bilinear reconstruction, spatially invariant shift d (Eq. 5 + 7)."""
    return _naive("bilinear", "si", d=d)


@DEFENSES.register("bilinear-sv")
def bilinear_sv(gamma: float = 1.5, seed: int | None = None) -> ImageResampler:
    """IR(bil, SAMPLER(γ)): bilinear reconstruction, random per-pixel shift U(0, γ) (Eq. 5 + 8); randomised."""
    return _naive("bilinear", "sv", gamma=gamma, seed=seed)


def _irad_weights(weights: str | Path | None, dataset: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict and metadata of an IRAD weight file (registered name, 'default'/None, or a path)."""
    return load_defense_weights("irad", weights, dataset, "train them with `irad train implicit` and `irad train samplenet`")


def build_resampler(spec: dict[str, Any]) -> ImageResampler:
    """Rebuild an ImageResampler from the spec stored in a weight file's metadata."""
    recon = RECONSTRUCTIONS.make(spec["reconstruction"])
    sampler_spec = spec.get("sampler", {"name": "identity"})
    sampler = SAMPLERS.make(sampler_spec)
    return ImageResampler(recon, sampler)


def load_irad_parts(weights: str | Path | None = None, dataset: str = "cifar10"
                    ) -> tuple[ImplicitReconstruction, SampleNet | None, dict[str, Any]]:
    """The trained implicit reconstruction and (if the file has one) SampleNet."""
    state, meta = _irad_weights(weights, dataset)
    spec = meta.get("spec")
    if spec is None:
        where = f" {str(weights)!r}" if isinstance(weights, (str, Path)) else ""
        raise WeightsError(f"the IRAD weight file{where} records no architecture ('spec' in its metadata): it is not "
                           "a file `irad train implicit` / `irad train samplenet` wrote (a file of the older two-file "
                           "format needs its .json sidecar beside it; `irad weights import FILE` then converts it)")
    recon = RECONSTRUCTIONS.make(spec["reconstruction"])
    load_strict(recon, {k.removeprefix("reconstruction."): v for k, v in state.items()
                        if k.startswith("reconstruction.")}, "implicit reconstruction")
    sampler = None
    if spec.get("sampler", {}).get("name") == "samplenet":
        sampler = SAMPLERS.make(spec["sampler"])
        load_strict(sampler, {k.removeprefix("sampler."): v for k, v in state.items() if k.startswith("sampler.")},
                    "SampleNet")
    return recon, sampler, meta


@DEFENSES.register("irad")
def irad_defense(dataset: str = "cifar10", weights: str | Path | None = None, precision: str = "fp32"
                 ) -> ImageResampler:
    """IRAD (§4): implicit reconstruction (Eq. 9) resampled at U = G + SampleNet(F, G) (Eq. 10).
    ``precision``: "fp32" or "bf16" (autocast; for GPUs)."""
    recon, sampler, meta = load_irad_parts(weights, dataset)
    if sampler is None:
        raise WeightsError("these weights have no SampleNet (an implicit representation alone); use the 'disco' "
                           "defense with them (Python: load_defense('disco', weights=PATH); command line: --defense "
                           "disco:weights=PATH, or purify --defense disco --weights PATH), or train a SampleNet on "
                           "them with `irad train samplenet`")
    module = ImageResampler(recon, sampler, precision=precision)
    module.meta = meta
    return module


@DEFENSES.register("disco")
def disco_defense(dataset: str = "cifar10", weights: str | Path | None = None, precision: str = "fp32"
                  ) -> ImageResampler:
    """Implicit reconstruction without SampleNet, U = G (DISCO, Ho & Vasconcelos 2022; Table 8 'w.o. sampling').
    ``precision``: "fp32" or "bf16" (autocast; for GPUs)."""
    recon, _, meta = load_irad_parts(weights, dataset)
    module = ImageResampler(recon, SAMPLERS.build("identity"), precision=precision)
    module.meta = meta
    return module


@DEFENSES.register("resample")
def resample_defense(dataset: str = "cifar10", reconstruction: str = "implicit", sampler: str = "identity",
                     weights: str | Path | None = None, **sampler_args: Any) -> ImageResampler:
    """Any RECONS x SAMPLER (Tables 8 and 15): e.g. reconstruction='implicit', sampler='si', d=1.5.

    The implicit reconstruction and SampleNet come from IRAD ``weights``; SampleNet with nearest/bilinear uses the
    implicit encoder for its features, as in Table 15. Further keywords are the sampler's parameters; an unknown
    one is an :class:`InputError` listing the valid ones. With IRAD weights, ``.meta`` is their metadata.
    """
    sampler_entry, recon_entry = SAMPLERS.get(sampler), RECONSTRUCTIONS.get(reconstruction)  # before any weights
    sampler, reconstruction = sampler_entry.name, recon_entry.name  # canonical (lower-case) names from here on
    sampler_factory, recon_factory = sampler_entry.factory, recon_entry.factory
    if sampler == "samplenet":
        if sampler_args:
            raise InputError(f"defense 'resample' with sampler 'samplenet' has no parameter "
                             f"{', '.join(map(repr, sampler_args))}; valid parameters: reconstruction, sampler, "
                             f"weights (SampleNet comes from the IRAD weights and takes no parameters)")
    else:
        check_params(sampler_factory, sampler_args, f"defense 'resample' with sampler {sampler!r}",
                     also=("reconstruction", "sampler", "weights"))
    meta = None
    if reconstruction == "implicit" or sampler == "samplenet":
        implicit, samplenet, meta = load_irad_parts(weights, dataset)
    recon = implicit if reconstruction == "implicit" else recon_factory()
    if sampler == "samplenet":
        if samplenet is None:
            raise WeightsError("these weights have no SampleNet (an implicit representation alone): pick another "
                               "sampler (sampler=identity, si or sv), or train a SampleNet on them with `irad train "
                               "samplenet` and pass its irad.safetensors")
        if reconstruction != "implicit":
            samplenet.encoder = implicit.encoder
        samp = samplenet
    else:
        try:
            samp = sampler_factory(**sampler_args)
        except TypeError as exc:  # e.g. a value of the wrong type
            raise InputError(f"defense 'resample': bad arguments for sampler {sampler!r} ({exc}); it takes "
                             f"{', '.join(param_names(sampler_factory)) or 'no parameters'}") from exc
    module = ImageResampler(recon, samp)
    if meta is not None:  # the IRAD weights' checksum and training classifiers, for the evaluation report
        module.meta = meta
    return module
