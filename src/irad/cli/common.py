"""Options shared by every subcommand: --device, --seed, --batch-size, --data."""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

from ..errors import IradError


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--device``, ``--seed``, ``--batch-size`` and ``--data`` with the same meaning everywhere."""
    func = click.option("--data", "data_root", type=click.Path(file_okay=False), default=None,
                        help="Data directory (else $IRAD_DATA, else the shipped CIFAR-10 sample).")(func)
    func = click.option("--batch-size", type=click.IntRange(min=1), default=None,
                        help="Batch size (default: the command's own).")(func)
    func = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")(func)
    func = click.option("--device", default="auto", show_default=True,
                        help="cpu, cuda, cuda:N, or auto (CUDA when available).")(func)
    return func


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn irad's own errors into one clear ``Error: ...`` line and exit status 1, instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except IradError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper
