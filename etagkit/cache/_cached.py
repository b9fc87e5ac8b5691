"""``@TagCache.cached``: a function whose results are cached per call arguments, keys and tags built
from those arguments (``_keys.py``)."""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast

from ._keys import KeyBuilder, KeySpec, TagBuilder, TagSpec, bound_arguments
from ._windows import Windows

if TYPE_CHECKING:
    from ._tagcache import TagCache

__all__ = ["CachedFunction"]

P = ParamSpec("P")
R = TypeVar("R")


class CachedFunction(Generic[P, R]):
    """A function wrapped by :meth:`TagCache.cached`; also binds as a method. An ``async def``
    function is cached through :meth:`TagCache.aget_or_set` (calling it returns a coroutine)."""

    def __init__(
        self,
        cache: TagCache,
        fn: Callable[P, R],
        *,
        windows: Windows,
        tags: TagSpec,
        key: KeySpec,
        ignore: Iterable[str],
    ) -> None:
        functools.update_wrapper(self, fn)
        self._is_async = inspect.iscoroutinefunction(fn)
        self.cache = cache
        self._fn = fn
        sig = inspect.signature(fn)
        self._sig = sig
        self._windows = windows
        self._key = KeyBuilder(fn, sig, key, ignore)
        self._tags = TagBuilder(sig, tags)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        arguments = bound_arguments(self._sig, args, kwargs)
        w = self._windows
        if self._is_async:  # an async def: the call returns a coroutine, as the function's would
            return cast(
                R,
                self.cache.aget_or_set(
                    self._key(args, kwargs, arguments),
                    lambda: cast(Awaitable[Any], self._fn(*args, **kwargs)),
                    ttl=w.ttl,
                    tags=_LazyTags(self._tags, args, kwargs, arguments),
                    stale_ttl=w.stale_ttl,
                    error_ttl=w.error_ttl,
                ),
            )
        return self.cache.get_or_set(
            self._key(args, kwargs, arguments),
            lambda: self._fn(*args, **kwargs),
            ttl=w.ttl,
            tags=_LazyTags(self._tags, args, kwargs, arguments),
            stale_ttl=w.stale_ttl,
            error_ttl=w.error_ttl,
        )

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The cache key of a call with these arguments."""
        return self._key(args, kwargs, bound_arguments(self._sig, args, kwargs))

    def tags(self, *args: P.args, **kwargs: P.kwargs) -> tuple[str, ...]:
        """The tags of a call with these arguments."""
        return self._tags(args, kwargs, bound_arguments(self._sig, args, kwargs))

    def delete(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Forget the cached result of a call with these arguments."""
        self.cache.delete(self.key(*args, **kwargs))

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        return self if instance is None else types.MethodType(self, instance)


class _LazyTags:
    """Tags built only when a compute needs them, so a hit does not format templates."""

    __slots__ = ("_args", "_arguments", "_builder", "_kwargs")

    def __init__(
        self, builder: TagBuilder, args: tuple[Any, ...], kwargs: dict[str, Any], arguments: dict[str, Any]
    ):
        self._builder = builder
        self._args = args
        self._kwargs = kwargs
        self._arguments = arguments

    def __iter__(self) -> Any:
        return iter(self._builder(self._args, self._kwargs, self._arguments))
