"""PEP 3333 details every WSGI face needs: a status line's code, whether a body is already whole,
closing an app's iterable on every path, and the iterable handed to the server around the app's."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

__all__ = ["Body", "close_iterable", "complete_body", "status_code"]


def complete_body(result: Iterable[bytes]) -> bool:
    """Whether the app's body is already whole in memory: a list or tuple, or an iterable of one
    chunk (``len() == 1``, the PEP 3333 convention servers use to set Content-Length)."""
    if isinstance(result, list | tuple):
        return True
    try:
        return len(result) == 1  # type: ignore[arg-type]
    except TypeError:
        return False


def status_code(status: str | None) -> int:
    head = (status or "").split(" ", 1)[0]
    return int(head) if head.isascii() and head.isdigit() else 0


def close_iterable(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


class Body:
    """The iterable handed to the server when the app's body streams through; closes the app's."""

    __slots__ = ("_drop", "_iterator", "_on_close", "_prefix", "_result")

    def __init__(
        self,
        prefix: list[bytes],
        iterator: Iterator[bytes],
        result: Iterable[bytes],
        drop: bool,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self._prefix = prefix
        self._iterator = iterator
        self._result = result
        self._drop = drop
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        if self._drop:
            return
        yield from self._prefix
        yield from self._iterator

    def close(self) -> None:
        try:
            close_iterable(self._result)
        finally:
            if self._on_close is not None:
                self._on_close()
