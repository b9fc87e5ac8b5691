"""Bytes for a remote store: msgpack or JSON by default, pickle only opt-in and HMAC-signed.

Every record starts with a 3-byte header ``MAGIC VERSION FORMAT`` so that bytes which are not
etagkit's (another program's key, a truncated write, an old layout) are recognised and refused
instead of being guessed at. Formats:

* ``m`` msgpack (the default when ``msgpack`` is installed), ``j`` JSON (the fallback). Both round-trip
  ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``list``, ``tuple`` and ``dict`` (keys of
  those scalar types) exactly; any other type raises ``SerializationError`` when it is written.
* ``p`` pickle, only when the user gives a secret key: ``HMAC-SHA256(key, body)`` follows the header
  and is verified (constant time) *before* ``pickle.loads`` runs, because unpickling attacker-written
  bytes executes code.

Reading accepts either safe format whatever the writer preferred (mixed versions during a rollout);
a pickle record is refused unless this codec holds the key that signed it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pickle
from typing import Any, Literal

from .._errors import ConfigurationError, SerializationError

__all__ = ["Codec", "SerializerName"]

SerializerName = Literal["auto", "json", "msgpack"]

MAGIC = 0xE7  # etagkit
VERSION = 1
_HEADER_LEN = 3
_MAC_LEN = 32
_MIN_KEY_LEN = 16

# JSON has no bytes, tuples or non-string keys: such values become one-key objects whose key starts
# with NUL; a user dict that itself has a NUL-prefixed key is escaped the same way, so nothing collides.
_B, _T, _D = "\x00b", "\x00t", "\x00d"
_EXT_TUPLE = 1  # msgpack extension type code for tuples


def _to_json(obj: Any) -> Any:
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, bytes):
        return {_B: base64.b64encode(obj).decode("ascii")}
    if isinstance(obj, list):
        return [_to_json(item) for item in obj]
    if isinstance(obj, tuple):
        return {_T: [_to_json(item) for item in obj]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("\x00") for k in obj):
            return {k: _to_json(v) for k, v in obj.items()}
        return {_D: [[_to_json(k), _to_json(v)] for k, v in obj.items()]}
    raise SerializationError(f"cannot serialize {type(obj).__name__} (use a pickle_key to opt in)")


def _json_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((key, value),) = obj.items()
        if key == _B:
            return base64.b64decode(value, validate=True)
        if key == _T:
            return tuple(value)
        if key == _D:
            return dict(value)
    return obj


def _msgpack_default(obj: Any) -> Any:
    import msgpack

    if isinstance(obj, tuple):
        return msgpack.ExtType(_EXT_TUPLE, _msgpack_pack(list(obj)))
    raise SerializationError(f"cannot serialize {type(obj).__name__} (use a pickle_key to opt in)")


def _msgpack_pack(obj: Any) -> bytes:
    import msgpack

    # strict_types: a tuple is not silently turned into a list; it reaches _msgpack_default.
    return bytes(msgpack.packb(obj, use_bin_type=True, strict_types=True, default=_msgpack_default))


def _msgpack_ext(code: int, data: bytes) -> Any:
    import msgpack

    if code != _EXT_TUPLE:
        raise SerializationError(f"unknown msgpack extension type {code}")
    return tuple(msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_msgpack_ext))


def _msgpack_installed() -> bool:
    try:
        import msgpack  # noqa: F401
    except ImportError:
        return False
    return True


class Codec:
    """Encodes values to self-describing bytes and back; see the module docstring for the formats."""

    __slots__ = ("_format", "_key")

    def __init__(self, serializer: SerializerName = "auto", *, pickle_key: bytes | None = None) -> None:
        if pickle_key is not None:
            if not isinstance(pickle_key, bytes) or len(pickle_key) < _MIN_KEY_LEN:
                raise ConfigurationError(f"pickle_key must be at least {_MIN_KEY_LEN} random bytes")
            self._format = b"p"
        elif serializer == "msgpack" or (serializer == "auto" and _msgpack_installed()):
            if not _msgpack_installed():
                raise ConfigurationError("serializer='msgpack' needs the msgpack package")
            self._format = b"m"
        elif serializer in ("json", "auto"):
            self._format = b"j"
        else:
            raise ConfigurationError(f"unknown serializer {serializer!r}")
        self._key = pickle_key

    @property
    def format(self) -> str:
        """The format this codec writes: ``"msgpack"``, ``"json"`` or ``"pickle"``."""
        return {b"m": "msgpack", b"j": "json", b"p": "pickle"}[self._format]

    def dumps(self, obj: Any) -> bytes:
        """Header + body; raises ``SerializationError`` for a value the format cannot hold exactly."""
        header = bytes((MAGIC, VERSION)) + self._format
        try:
            if self._format == b"m":
                return header + _msgpack_pack(obj)
            if self._format == b"j":
                return header + json.dumps(_to_json(obj), separators=(",", ":")).encode()
            assert self._key is not None
            body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            return header + hmac.digest(self._key, body, hashlib.sha256) + body
        except SerializationError:
            raise
        except (TypeError, ValueError, OverflowError, pickle.PicklingError, AttributeError) as exc:
            raise SerializationError(f"cannot serialize value: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        """The value back; ``SerializationError`` for foreign bytes, an unknown format or a bad HMAC."""
        if len(data) < _HEADER_LEN or data[0] != MAGIC or data[1] != VERSION:
            raise SerializationError("not an etagkit record (bad magic or version)")
        fmt, body = data[2:3], memoryview(data)[_HEADER_LEN:]
        try:
            if fmt == b"m":
                import msgpack

                return msgpack.unpackb(body, raw=False, strict_map_key=False, ext_hook=_msgpack_ext)
            if fmt == b"j":
                return json.loads(bytes(body), object_hook=_json_hook)
        except SerializationError:
            raise
        except ImportError as exc:
            raise SerializationError("msgpack record but msgpack is not installed") from exc
        except Exception as exc:  # any decoder failure on foreign bytes is the same verdict
            raise SerializationError(f"corrupt {fmt!r} record: {exc}") from exc
        if fmt == b"p":
            if self._key is None:
                raise SerializationError("pickle record refused: no pickle_key configured")
            mac, payload = bytes(body[:_MAC_LEN]), bytes(body[_MAC_LEN:])
            if not hmac.compare_digest(mac, hmac.digest(self._key, payload, hashlib.sha256)):
                raise SerializationError("pickle record refused: HMAC does not verify")
            try:
                return pickle.loads(payload)  # signed with our key, verified above
            except Exception as exc:
                raise SerializationError(f"corrupt pickle record: {exc}") from exc
        raise SerializationError(f"unknown record format {fmt!r}")
