"""What ``TagCache`` decides about a found entry: which window it is in, and the windows themselves."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Plan", "Windows"]


class Plan(enum.Enum):
    """What to do with a found entry."""

    FRESH = "fresh"  # serve
    EARLY = "early"  # serve, and refresh in the background (XFetch)
    STALE = "stale"  # serve stale, and refresh in the background
    REFRESH = "refresh"  # refresh now; serve stale only if that raises


@dataclass(frozen=True, slots=True)
class Windows:
    """An entry's windows in seconds: fresh, then stale-while-revalidate, then stale-if-error."""

    ttl: float
    stale_ttl: float
    error_ttl: float
