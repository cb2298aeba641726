"""What an evaluation run covers, and the ``name:key=value,...`` spec syntax of the CLI."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..utils.validation import is_whole


def parse_spec(text: str) -> tuple[str, dict[str, Any]]:
    """``"bilinear-sv:gamma=1.5,seed=0"`` -> ``("bilinear-sv", {"gamma": 1.5, "seed": 0})``.

    Values are Python literals (numbers, strings, lists such as ``attacks=['apgd-ce','square']``: commas inside
    brackets do not split parameters) or fractions ``a/b`` such as ``alpha=2/255``; anything else stays a string.
    """
    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for item in _split_top_level(rest):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"bad parameter {item!r} in {text!r}; write name:key=value,key=value")
        params[key.strip()] = _parse_value(value.strip())
    if not name.strip():
        raise InputError(f"empty name in spec {text!r}")
    return name.strip(), params


def load_defense_spec(spec: str, **kwargs: Any) -> Any:
    """``load_defense`` of a spec such as ``"jpeg:quality=20"`` (its parameters added to ``kwargs``)."""
    from ..defenses import load_defense

    name, params = parse_spec(spec)
    return load_defense(name, **kwargs, **params)


CLASSIFIER_SPEC_KEYS = ("weights", "mean", "std", "num_classes", "input_range")


def load_classifier_spec(spec: str, dataset: str, device: Any) -> Any:
    """``load_classifier`` of a spec such as ``"resnet20"``, ``"resnet56:weights=PATH"`` (default weights) or
    ``"resnet44:weights=PATH,mean=[0.485,0.456,0.406],std=[0.229,0.224,0.225]"`` (also ``num_classes``,
    ``input_range=[0,255]``)."""
    from ..classifiers import load_classifier

    name, params = parse_spec(spec)
    unknown = sorted(set(params) - set(CLASSIFIER_SPEC_KEYS))
    if unknown:
        raise InputError(f"classifier spec {spec!r}: unknown key(s) {', '.join(unknown)}; a classifier takes "
                         f"{', '.join(CLASSIFIER_SPEC_KEYS)} (e.g. {name}:weights=PATH,mean=[...],std=[...])")
    weights = params.pop("weights", "default")
    for key in ("mean", "std", "input_range"):
        if key in params:
            params[key] = tuple(params[key]) if isinstance(params[key], (list, tuple)) else params[key]
    return load_classifier(name, dataset, weights, device=device, **params)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets and quotes; empty items are dropped."""
    items, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item for item in items if item.strip()]


def _parse_value(value: str) -> Any:
    num, slash, den = value.partition("/")
    if slash:
        try:
            return float(ast.literal_eval(num.strip())) / float(ast.literal_eval(den.strip()))
        except (ValueError, SyntaxError, TypeError, ZeroDivisionError):
            return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def spec_label(name: str, params: dict[str, Any]) -> str:
    return name + (":" + ",".join(f"{k}={v}" for k, v in sorted(params.items())) if params else "")


@dataclass
class EvalConfig:
    dataset: str = "cifar10"
    split: str = "test"
    n_images: int = 100
    start: int = 0  # first image index (the runner can be split across processes by image ranges)
    seed: int = 0
    eps: list[float] = field(default_factory=list)  # empty: the dataset's default (8/255 CIFAR, 4/255 ImageNet)
    victims: list[str] = field(default_factory=lambda: ["resnet32"])  # not a classifier the shipped IRAD saw
    defenses: list[str] = field(default_factory=lambda: ["none", "irad"])
    attacks: list[str] = field(default_factory=lambda: ["autoattack"])
    threat_models: list[str] = field(default_factory=lambda: ["oblivious"])
    surrogate: str | None = None  # transfer threat model: the classifier the attack is crafted on
    repeats: int = 3  # randomized defenses: evaluate this many times with different seeds (mean reported), as the CLI
    eot_samples: int = 8  # BPDA on randomized defenses: logits averaged over this many passes
    batch_size: int = 100
    timing_images: int = 32
    paper: str | None = None  # preset name whose paper figures are shown beside ours
    indicators: bool = True  # attack-failure indicators for adaptive threat models (irad.attacks.indicators)
    indicator_images: int = 8  # images the pipeline indicators run on (the binarization test: half of them)


def check_config(cfg: EvalConfig) -> None:
    """Refuse, before anything is built, an evaluation that cannot run: unknown threat models, a transfer threat
    model without a surrogate (or a surrogate without it, or one that is also a victim), a bad image range, and
    counts that are not whole numbers >= 1."""
    from ..attacks import THREAT_MODELS

    for tm in cfg.threat_models:
        THREAT_MODELS.get(tm)
    if "transfer" in cfg.threat_models and not cfg.surrogate:
        raise InputError("the transfer threat model needs --surrogate NAME (the classifier attacks are crafted on)")
    if cfg.surrogate and "transfer" not in cfg.threat_models:
        raise InputError("--surrogate is used only by the transfer threat model; add --threat-model transfer or drop "
                         "--surrogate")
    if cfg.surrogate and cfg.surrogate in cfg.victims:
        raise InputError(f"the surrogate {cfg.surrogate!r} is also a victim: crafting on the victim itself is the "
                         "oblivious threat model; pick a different surrogate classifier")
    if cfg.start < 0 or cfg.n_images < 1:
        raise InputError(f"image range must have start >= 0 and n_images >= 1, got start={cfg.start}, "
                         f"n_images={cfg.n_images}")
    for name in ("repeats", "eot_samples", "batch_size", "timing_images"):
        value = getattr(cfg, name)
        if not is_whole(value, 1):
            raise InputError(f"{name} must be a whole number >= 1, got {value!r}")
