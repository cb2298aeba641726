"""Exceptions raised by irad. Every message names the problem and the fix."""

from __future__ import annotations


class IradError(Exception):
    """Base class of every error irad raises on purpose."""


class InputError(IradError, ValueError):
    """An input tensor, image or file is not what the function expects."""


class UnknownNameError(IradError, KeyError):
    """A name (model, dataset, defense, attack ...) is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class WeightsError(IradError, RuntimeError):
    """A weight file is missing, corrupted, or does not fit the architecture."""


class DataError(IradError, RuntimeError):
    """A dataset cannot be found or read."""
