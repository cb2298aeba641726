"""Re-exports :mod:`irad.defense_base` (``Defense``, ``DefenseInfo``, ``defense_info``, ``is_randomized``), where the
defenses' base class lives below both the resampling core and this layer."""

from ..defense_base import Defense, DefenseInfo, defense_info, is_randomized

__all__ = ["Defense", "DefenseInfo", "defense_info", "is_randomized"]
