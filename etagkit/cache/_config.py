"""Checks of constructor settings, shared by every cache class: a mistake raises ConfigurationError
when the object is built, not a TypeError (or a busy loop, or a silent no-op) at the first request."""

from __future__ import annotations

import math

from .._errors import ConfigurationError

__all__ = ["number", "positive_int"]


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an int >= 1 (not a bool); else ConfigurationError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int >= 1, not {value!r}")
    return value


def number(name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a float if it is a finite int or float >= 0 (> 0 if ``positive``); bools, strings,
    NaN and infinities raise ConfigurationError naming the setting."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not (value > 0 if positive else value >= 0)
    ):
        raise ConfigurationError(
            f"{name} must be a finite number {'> 0' if positive else '>= 0'}, not {value!r}"
        )
    return float(value)
