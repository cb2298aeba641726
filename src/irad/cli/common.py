"""Options shared by the subcommands: --device, --seed, --batch-size, --data; and friendly errors."""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

from ..errors import IradError


def refuse_under_torchrun(ctx: click.Context, prefix: str = "") -> None:
    """Under torchrun, refuse a subcommand that has no distributed version (N copies would run side by side and
    write the same files)."""
    from .. import distributed

    sub = f"{prefix}{ctx.invoked_subcommand}"
    if distributed.launched() and ctx.invoked_subcommand is not None and not any(
            c == sub or c.startswith(sub + " ") for c in distributed.DISTRIBUTED_COMMANDS):
        try:
            distributed.require_single_process(sub)
        except IradError as exc:
            raise click.ClickException(str(exc)) from exc


def on_main_process() -> bool:
    """Whether this process prints results: always, except on ranks other than 0 under torchrun."""
    from .. import distributed

    return distributed.current().is_main


def common_options(func: Callable[..., Any] | None = None, *, data: bool = True) -> Any:
    """Add ``--device``, ``--seed``, ``--batch-size`` and ``--data`` with the same meaning everywhere. Use as
    ``@common_options``, or ``@common_options(data=False)`` for commands that read no dataset: their ``--data`` is
    hidden from the help, for the command to refuse with a message that says why."""

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--data", "data_root", type=click.Path(file_okay=False), default=None, hidden=not data,
                         help="Data directory (else $IRAD_DATA, else the shipped CIFAR-10 sample).")(f)
        f = click.option("--batch-size", type=click.IntRange(min=1), default=None,
                         help="Batch size (default: the command's own).")(f)
        f = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")(f)
        return click.option("--device", default="auto", show_default=True,
                            help="cpu, cuda, cuda:N, or auto (CUDA when available).")(f)

    return apply(func) if func is not None else apply


class PixelBudget(click.ParamType):
    """A budget in [0, 1] image units, written as a fraction such as ``8/255`` or a decimal such as ``0.0314``."""

    name = "FRACTION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        num, _, den = str(value).partition("/")
        try:
            budget = float(num) / float(den) if den else float(value)
        except (ValueError, ZeroDivisionError):
            self.fail(f"must look like 8/255 or 0.0314, got {value!r}", param, ctx)
        if not 0 < budget <= 1:
            self.fail(f"must be in (0, 1] (images are in [0, 1]), got {value!r}", param, ctx)
        return budget


PIXEL_BUDGET = PixelBudget()


class NamesChoice(click.Choice):
    """A choice among names read when the option is parsed (or its help shown), not when the command is defined:
    parts a ``--plugin`` registers are offered too. ``names()`` returns them, e.g. ``THREAT_MODELS.names``."""

    def __init__(self, names: Callable[[], Any]) -> None:
        self._names = names
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self._names())


def registry_names(module: str, attribute: str) -> Callable[[], list[str]]:
    """The names of the registry ``module.attribute`` (imported when first needed), for :class:`NamesChoice`."""

    def names() -> list[str]:
        import importlib

        found = getattr(importlib.import_module(module), attribute)
        return list(found.names() if hasattr(found, "names") else found)

    return names


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn irad's own errors into one clear ``Error: ...`` line and exit status 1, instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except IradError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper
