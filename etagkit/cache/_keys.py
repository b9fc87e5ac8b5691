"""Cache keys and tags for ``@TagCache.cached``: stable across processes, never Python's salted ``hash()``.

A default key is ``<module>.<qualname>:<blake2b of the canonical encoding of the bound arguments>``.
The encoding is type-tagged and deterministic (dicts and sets sorted by encoded member), so equal
arguments give equal keys in every process and ``1``, ``1.0``, ``True`` and ``"1"`` differ.
Objects it does not know must say how to encode themselves (``__cache_key__``) or the caller passes
``key=``: guessing (``repr`` with an address in it) would silently give a key per process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import inspect
import string
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._errors import ConfigurationError
from ._store import GLOBAL_TAG

__all__ = ["KeyBuilder", "TagBuilder", "canonical", "normalize_tags"]

TagMaker = Callable[..., "Iterable[str] | str"]
TagSpec = str | TagMaker | Iterable["str | TagMaker"]
KeySpec = str | Callable[..., str] | None


def canonical(value: object) -> bytes:
    """The deterministic, type-tagged byte encoding of ``value`` (TypeError for unknown types)."""
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def _encode(value: object, out: bytearray) -> None:
    # bool before int (bool is an int); exact types first so subclasses with odd __str__ still work
    if value is None:
        out += b"N"
    elif value is True or value is False:
        out += b"T" if value else b"F"
    elif isinstance(value, enum.Enum):
        _tagged(b"E", f"{_type_name(type(value))}", out)
        _encode(value.value, out)
    elif isinstance(value, int):
        _tagged(b"i", str(int(value)), out)
    elif isinstance(value, float):
        _tagged(b"f", repr(float(value)), out)
    elif isinstance(value, str):
        _tagged(b"s", str(value), out)
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        out += b"b%d:" % len(raw) + raw
    elif isinstance(value, list | tuple):
        out += (b"l" if isinstance(value, list) else b"t") + b"%d[" % len(value)
        for item in value:
            _encode(item, out)
        out += b"]"
    elif isinstance(value, Mapping):
        pairs = sorted((canonical(k), canonical(v)) for k, v in value.items())
        out += b"d%d{" % len(pairs) + b"".join(k + v for k, v in pairs) + b"}"
    elif isinstance(value, set | frozenset):
        members = sorted(canonical(item) for item in value)
        out += (b"S" if isinstance(value, set) else b"Z") + b"%d{" % len(members) + b"".join(members) + b"}"
    elif isinstance(value, dt.datetime | dt.date | dt.time):
        _tagged(b"D", f"{type(value).__name__}:{value.isoformat()}", out)
    elif isinstance(value, dt.timedelta):
        _tagged(b"R", f"{value.days}:{value.seconds}:{value.microseconds}", out)
    elif isinstance(value, decimal.Decimal | uuid.UUID):
        _tagged(b"X", f"{type(value).__name__}:{value}", out)
    elif isinstance(value, type):
        _tagged(b"C", _type_name(value), out)
    elif callable(getattr(value, "__cache_key__", None)):
        _tagged(b"K", _type_name(type(value)), out)
        _encode(value.__cache_key__(), out)  # type: ignore[attr-defined]
    elif dataclasses.is_dataclass(value):
        _tagged(b"A", _type_name(type(value)), out)
        _encode({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, out)
    else:
        raise TypeError(
            f"cannot build a stable cache key from a {_type_name(type(value))}: "
            "give the class a __cache_key__() method, or pass key= to the decorator"
        )


def _tagged(tag: bytes, text: str, out: bytearray) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    out += tag + b"%d:" % len(raw) + raw


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def normalize_tags(tags: Iterable[str] | str) -> tuple[str, ...]:
    """Tags as a duplicate-free tuple; a lone string is one tag. Raises ConfigurationError if invalid."""
    if isinstance(tags, str):
        tags = (tags,)
    result = tuple(dict.fromkeys(tags))
    for tag in result:
        if not isinstance(tag, str) or not tag or tag == GLOBAL_TAG:
            raise ConfigurationError(
                f"a tag must be a non-empty string other than {GLOBAL_TAG!r}, not {tag!r}"
            )
    return result


def _fields(template: str) -> set[str]:
    """Top-level argument names a format template refers to (``"{book.id}"`` -> ``{"book"}``)."""
    names = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:  # an unbalanced brace ...
        raise ConfigurationError(f"bad template {template!r}: {exc}") from None
    for _, field, _, _ in parsed:
        if field is not None:
            name = field.split(".", 1)[0].split("[", 1)[0]
            if not name or name.isdigit():
                raise ConfigurationError(f"template {template!r} must name arguments, e.g. '{{book_id}}'")
            names.add(name)
    return names


def _check_template(template: str, sig: inspect.Signature) -> None:
    params = sig.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = {name for name in _fields(template) if name not in params}
    if unknown and not takes_any:
        raise ConfigurationError(f"template {template!r} names {sorted(unknown)}, not arguments of {sig}")


def bound_arguments(sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by parameter name, defaults applied, ``**kwargs`` merged in."""
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    for param in sig.parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = arguments.pop(param.name, {})
            arguments.update({k: v for k, v in extra.items() if k not in arguments})
    return arguments


class KeyBuilder:
    """Builds the key of one call of a decorated function (template, callable, or the default)."""

    __slots__ = ("_ignore", "_prefix", "_sig", "_spec")

    def __init__(self, fn: Callable[..., Any], sig: inspect.Signature, spec: KeySpec, ignore: Iterable[str]):
        self._sig = sig
        self._spec = spec
        self._ignore = frozenset(ignore)
        self._prefix = f"{fn.__module__}.{fn.__qualname__}"
        if isinstance(spec, str):
            _check_template(spec, sig)
        elif spec is not None and not callable(spec):
            raise ConfigurationError(f"key must be a format template, a callable or None, not {spec!r}")
        missing = self._ignore - set(sig.parameters)
        if missing:
            raise ConfigurationError(f"ignore names {sorted(missing)}, not arguments of {sig}")

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any], arguments: dict[str, Any]) -> str:
        spec = self._spec
        if isinstance(spec, str):
            return spec.format_map(arguments)
        if spec is not None:
            key = spec(*args, **kwargs)
            if not isinstance(key, str):
                raise TypeError(f"the key callable returned {type(key).__name__}, not str")
            return key
        kept = {name: value for name, value in arguments.items() if name not in self._ignore}
        return f"{self._prefix}:{hashlib.blake2b(canonical(kept), digest_size=16).hexdigest()}"


class TagBuilder:
    """Builds the tags of one call: literal strings, format templates over the arguments and
    callables taking the call's arguments (one callable, or a list mixing all three). Templates are
    checked against the signature here, so a mistake raises at decoration."""

    __slots__ = ("_literal", "_spec")

    def __init__(self, sig: inspect.Signature, spec: TagSpec):
        items: tuple[str | TagMaker, ...] = (
            (spec,) if isinstance(spec, str) or callable(spec) else tuple(spec)
        )
        for item in items:
            if isinstance(item, str):
                _check_template(item, sig)
            elif not callable(item):
                raise ConfigurationError(f"a tag is a string, a template or a callable, not {item!r}")
        self._spec = items
        literal = [item for item in items if isinstance(item, str) and not _fields(item)]
        self._literal = normalize_tags(literal) if len(literal) == len(items) else None

    def __bool__(self) -> bool:
        return bool(self._spec)

    def __call__(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], arguments: dict[str, Any]
    ) -> tuple[str, ...]:
        if self._literal is not None:
            return self._literal
        out: list[str] = []
        for item in self._spec:
            if isinstance(item, str):
                out.append(item.format_map(arguments))
            else:
                made = item(*args, **kwargs)
                out.extend((made,) if isinstance(made, str) else made)
        return normalize_tags(out)
