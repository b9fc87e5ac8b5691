"""The remote-store codec: exact round trips, no pickle unless signed, foreign bytes refused."""

from __future__ import annotations

import hashlib
import hmac
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etagkit import ConfigurationError, SerializationError
from etagkit.cache._serialize import MAGIC, VERSION, Codec

KEY = b"k" * 32
CODECS = [Codec("json"), Codec("msgpack"), Codec(pickle_key=KEY)]
IDS = ["json", "msgpack", "pickle"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
keys = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text() | st.binary()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 == 1.0 == True must not pass)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        pairs = zip(a.items(), b.items(), strict=True)
        return len(a) == len(b) and all(same(k, k2) and same(v, v2) for (k, v), (k2, v2) in pairs)
    return bool(a == b)


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@given(value=values)
def test_round_trip_is_exact(codec: Codec, value: Any) -> None:
    assert same(codec.loads(codec.dumps(value)), value)


@pytest.mark.parametrize("codec", CODECS[:2], ids=IDS[:2])
def test_json_marker_keys_in_user_data_do_not_collide(codec: Codec) -> None:
    tricky = {"\x00b": "not base64!", "\x00t": [1], "x": ({"\x00d": []},)}
    assert same(codec.loads(codec.dumps(tricky)), tricky)


@pytest.mark.parametrize("codec", CODECS[:2], ids=IDS[:2])
def test_unsupported_types_refused_at_write(codec: Codec) -> None:
    with pytest.raises(SerializationError):
        codec.dumps({"when": object()})
    with pytest.raises(SerializationError):
        codec.dumps({1, 2})


def test_default_prefers_msgpack_when_installed() -> None:
    assert Codec().format == "msgpack"
    assert Codec("json").format == "json"
    assert Codec(pickle_key=KEY).format == "pickle"


def test_safe_formats_read_each_other() -> None:
    assert Codec("json").loads(Codec("msgpack").dumps([b"x", (1,)])) == [b"x", (1,)]
    assert Codec("msgpack").loads(Codec("json").dumps([b"x", (1,)])) == [b"x", (1,)]


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@given(data=st.binary(max_size=64))
def test_foreign_bytes_never_decode_silently(codec: Codec, data: bytes) -> None:
    """Arbitrary bytes: refused with SerializationError, unless they happen to be a valid record."""
    try:
        codec.loads(data)
    except SerializationError:
        return
    assert data[:2] == bytes((MAGIC, VERSION)) and data[2:3] in (b"j", b"m")


@pytest.mark.parametrize(
    "data", [b"", b"hello", b'{"a": 1}', pickle.dumps("x"), bytes((MAGIC, VERSION)) + b"z{}"]
)
def test_garbage_is_refused(data: bytes) -> None:
    for codec in CODECS:
        with pytest.raises(SerializationError):
            codec.loads(data)


def test_pickle_needs_the_key_that_signed_it() -> None:
    record = Codec(pickle_key=KEY).dumps({"a": 1})
    with pytest.raises(SerializationError, match="no pickle_key"):
        Codec().loads(record)
    with pytest.raises(SerializationError, match="HMAC"):
        Codec(pickle_key=b"another key of 32 bytes........!").loads(record)


class Boom:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (pytest.fail, ("unpickled an unsigned payload",))


def test_tampered_pickle_is_never_unpickled() -> None:
    """An attacker who can write to Redis but lacks the key cannot make us run pickle.loads."""
    header = bytes((MAGIC, VERSION)) + b"p"
    evil = pickle.dumps(Boom())
    forged = header + hmac.digest(b"wrong key, 32 bytes long........", evil, hashlib.sha256) + evil
    with pytest.raises(SerializationError, match="HMAC"):
        Codec(pickle_key=KEY).loads(forged)
    genuine = Codec(pickle_key=KEY).dumps("ok")
    flipped = genuine[:-1] + bytes((genuine[-1] ^ 1,))
    with pytest.raises(SerializationError, match="HMAC"):
        Codec(pickle_key=KEY).loads(flipped)


def test_pickle_opt_in_holds_arbitrary_objects() -> None:
    codec = Codec(pickle_key=KEY)
    value = {"s": {1, 2}, "f": frozenset({"a"})}
    assert codec.loads(codec.dumps(value)) == value


@pytest.mark.parametrize("key", [b"", b"short", "a str key of enough length"])
def test_weak_or_wrong_pickle_keys_are_configuration_errors(key: Any) -> None:
    with pytest.raises(ConfigurationError):
        Codec(pickle_key=key)


def test_unknown_serializer_name() -> None:
    with pytest.raises(ConfigurationError):
        Codec("yaml")  # type: ignore[arg-type]
