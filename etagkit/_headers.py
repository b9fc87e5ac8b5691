"""Case-insensitive header access over the shapes callers hold: mappings and (name, value) lists."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["HeaderSource", "get_header"]

HeaderSource = Mapping[str, str] | Iterable[tuple[str, str]]


def get_header(headers: HeaderSource, name: str) -> str | None:
    """The field value of ``name`` (case-insensitive), repeated fields joined by ``", "`` (§5.3)."""
    lname = name.lower()
    items = headers.items() if isinstance(headers, Mapping) else headers
    found = [v for k, v in items if k.lower() == lname]
    if not found:
        return None
    return ", ".join(found)
