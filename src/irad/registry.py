"""A tiny name -> factory registry (the LIIF ``register``/``make`` idea).

Every pluggable family in irad (classifiers, datasets, reconstructions, samplers, defenses, attacks, threat
models, training tasks) is a :class:`Registry`. Users add their own parts with the decorator::

    from irad.defenses import DEFENSES

    @DEFENSES.register("my-blur")
    def my_blur(**kwargs) -> torch.nn.Module: ...

and build any entry from a spec ``{"name": ..., "args": {...}}`` with :meth:`Registry.make`, which is how saved
checkpoints rebuild themselves.
"""

from __future__ import annotations

import re

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """The first sentence of the docstring's first paragraph, on one line, without reST ``code`` marks."""
        doc = (self.factory.__doc__ or "").strip().split("\n\n")[0]
        text = " ".join(line.strip() for line in doc.splitlines()).replace("``", "")
        return re.split(r"(?<=\.)\s+(?=[A-Z(])", text, maxsplit=1)[0]


class Registry(Generic[T]):
    """Maps names to factories. ``kind`` is used in error messages ("defense", "classifier" ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator recording ``factory`` under ``name`` (lower-case); ``meta`` is free-form metadata."""
        key = name.lower()

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if key in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered; pick another name")
            self._entries[key] = Entry(key, factory, dict(meta))
            return factory

        return decorator

    def get(self, name: str) -> Entry[T]:
        if not isinstance(name, str):
            raise UnknownNameError(f"a {self.kind} name must be a string, got {name!r}; available: "
                                   f"{', '.join(sorted(self._entries))}")
        key = name.lower()
        if key not in self._entries:
            close = difflib.get_close_matches(key, self._entries, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(sorted(self._entries))}. "
                f"Register your own with @{self.kind.upper()}S.register(name)."
            )
        return self._entries[key]

    def build(self, name: str, **kwargs: Any) -> T:
        return self.get(name).factory(**kwargs)

    def make(self, spec: dict[str, Any]) -> T:
        """Build from ``{"name": ..., "args": {...}}``."""
        if not (isinstance(spec, dict) and isinstance(spec.get("name"), str)
                and isinstance(spec.get("args", {}), dict)):
            raise UnknownNameError(f"a {self.kind} spec must be {{'name': str, 'args': dict}}, got {spec!r}; the "
                                   f"file that holds it (e.g. a weight file's metadata) is damaged")
        return self.build(spec["name"], **spec.get("args", {}))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
