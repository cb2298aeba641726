"""What an evaluation run covers, and the ``name:key=value,...`` spec syntax of the CLI."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError


def parse_spec(text: str) -> tuple[str, dict[str, Any]]:
    """``"bilinear-sv:gamma=1.5,seed=0"`` -> ``("bilinear-sv", {"gamma": 1.5, "seed": 0})``."""
    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"bad parameter {item!r} in {text!r}; write name:key=value,key=value")
        try:
            params[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            params[key.strip()] = value.strip()
    if not name:
        raise InputError(f"empty name in spec {text!r}")
    return name.strip(), params


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
    repeats: int = 1  # randomized defenses: evaluate this many times with different seeds (mean reported)
    eot_samples: int = 8  # BPDA on randomized defenses: logits averaged over this many passes
    batch_size: int = 100
    timing_images: int = 32
    paper: str | None = None  # preset name whose paper figures are shown beside ours
