"""Stored records from a hostile or broken store (issue 13.3): every bad record is a miss, never an
exception and never a header a server would refuse; Hypothesis fuzzes both decoders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etagkit import ETag
from etagkit.core.headers import valid_field
from etagkit.core.records import CachedResponse, StoredValidator

U, R = "\x1f", "\x1e"
GOOD = U.join(("etagkit-validator-1", '"v1"', "", "12", "accept", f'ETag: "v1"{R}Cache-Control: no-cache'))
LAST_MODIFIED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def record(*parts: str) -> str:
    return U.join(("etagkit-validator-1", *parts))


def test_the_good_record_decodes() -> None:
    decoded = StoredValidator.from_value(GOOD)
    assert decoded == StoredValidator(
        ETag("v1"), None, (("ETag", '"v1"'), ("Cache-Control", "no-cache")), ("accept",), 12
    )
    assert decoded is not None and decoded.to_value() == GOOD


@pytest.mark.parametrize(
    "value",
    [
        record('"v1"', "", "²", "", ""),  # '²'.isdigit() is True, int('²') raises
        record('"v1"', "", "\u0661\u0662", "", ""),  # Arabic-Indic digits: not a Content-Length
        record('"v1"', "", "-1", "", ""),
        record('"v1"', "", "", "", ""),
        record('"v1"', "", "9" * 25, "", ""),  # beyond any byte count (and int()'s digit limit)
        record('"v1"', "", str(2**63), "", ""),
        record('"v1"', "", "1", "", "Cache-Control: no-cache\r\nX-Injected: 1"),  # CRLF in a value
        record('"v1"', "", "1", "", "Cache-Control: a\nb"),
        record('"v1"', "", "1", "", "Cache-Control: a\x00b"),
        record('"v1"', "", "1", "", "Cache-Control: \u0100"),  # above latin-1: no wire form
        record('"v1"', "", "1", "", "Cache Control: x"),  # field name with a space: no token
        record('"v1"', "", "1", "", "Set-Cookie: session=alice"),  # never in a stored 304
        record('"v1"', "", "1", "", "Content-Length: 5"),
        record('"v1"', "", "1", "", "Transfer-Encoding: chunked"),
        record('"v1"', "", "1", "", "no separator"),
        record('"v1"', "", "1", "accept encoding", ""),  # a Vary name that is no token
        record('"v1"', "", "1", "Accept", ""),  # Vary names are stored lower-cased
        record("v1", "", "1", "", ""),  # not an entity-tag
        record(' "v1"', "", "1", "", ""),  # not as written
        record("", "yesterday", "1", "", ""),  # not an HTTP-date
        record("", "", "1", "", ""),  # no validator at all
        record('"v1"', "", "1", ""),  # a part missing
        "etagkit-validator-0" + GOOD[len("etagkit-validator-1") :],  # another version
        GOOD + "x" * 20_000,  # far larger than any record of ours
        "",
        "garbage",
    ],
)
def test_a_bad_validator_record_is_a_miss(value: str) -> None:
    assert StoredValidator.from_value(value) is None


@pytest.mark.parametrize("value", [None, 12, b"bytes", ["list"], {"s": 200}, 1.5])
def test_a_validator_record_that_is_not_text_is_a_miss(value: object) -> None:
    assert StoredValidator.from_value(value) is None


def test_a_record_the_decoder_would_refuse_is_never_stored() -> None:
    ok = [("ETag", '"v1"'), ("Cache-Control", "no-cache")]
    assert StoredValidator.from_response(200, ok) is not None
    assert StoredValidator.from_response(200, [*ok[:1], ("Cache-Control", "a\r\nb")]) is None
    assert StoredValidator.from_response(200, [*ok, ("Vary", "accept encoding")]) is None
    assert StoredValidator.from_response(200, [*ok, ("Cache-Control", "x" * 20_000)]) is None
    # a Content-Length no decoder can read counts as 0 saved bytes, never an exception
    for bad in ("²", "9" * 5000, "-3"):
        stored = StoredValidator.from_response(200, [*ok, ("Content-Length", bad)])
        assert stored is not None and stored.length == 0
    assert StoredValidator.from_response(200, ok, length=-5) == StoredValidator.from_response(
        200, ok, length=0
    )


RESPONSE: dict[str, Any] = {
    "s": 200,
    "h": [["Content-Type", "application/json"], ["Content-Length", "2"], ["ETag", '"r1"']],
    "b": b"{}",
}


def test_the_good_response_decodes() -> None:
    decoded = CachedResponse.from_value(RESPONSE)
    assert decoded is not None and decoded.body == b"{}" and decoded.to_value() == RESPONSE


def _with(**changes: Any) -> dict[str, Any]:
    return {**RESPONSE, **changes}


def _headers(*extra: Any) -> dict[str, Any]:
    return _with(h=[*RESPONSE["h"], *extra])


@pytest.mark.parametrize(
    "value",
    [
        _with(s=304),
        _with(s="200"),
        _with(s=True),  # a bool is an int in Python, not a status
        _with(b="{}"),
        _with(h="ETag: x"),
        _with(h=[["ETag", '"r1"', "extra"]]),
        _with(h=[[b"ETag", b'"r1"']]),
        _with(h=[["ETag", 1]]),
        _headers(["X-Evil", "a\r\nSet-Cookie: session=alice"]),  # CRLF: a server raises or is split
        _headers(["Bad Name", "x"]),
        _headers(["Set-Cookie", "session=alice"]),  # one user's cookie, replayed to everyone
        _headers(["Connection", "close"]),  # a WSGI server refuses it from an app (PEP 3333)
        _headers(["Transfer-Encoding", "chunked"]),
        _headers(["Expires", "Thu, 01 Jan 2037 00:00:00 GMT"]),
        _headers(["Cache-Control", "private"]),
        _headers(["Vary", "*"]),
        _with(h=[["Content-Length", "3"], ["ETag", '"r1"']]),  # not the body's length
        _with(h=[["Content-Length", "²"], ["ETag", '"r1"']]),
        _with(h=[["Content-Type", "text/plain"]]),  # no validator
        _with(h=[["ETag", "not-quoted"]]),
        {"h": [], "b": b""},
        {},
        [],
        "s",
        None,
    ],
)
def test_a_bad_cached_response_is_a_miss(value: object) -> None:
    assert CachedResponse.from_value(value) is None


# -- fuzz --------------------------------------------------------------------------------------------

_TRICKY = st.sampled_from(
    ["\r", "\n", "\x00", "\x7f", "²", "\u0661", U, R, ":", ": ", ",", '"', "W/", "\t", " ", "ÿ"]
)
_TEXT = st.lists(st.one_of(_TRICKY, st.text(max_size=8)), max_size=8).map("".join)
_PARTS = st.one_of(
    st.just("etagkit-validator-1"),
    st.just('"v1"'),
    st.just("Wed, 01 May 2024 12:00:00 GMT"),
    st.just("12"),
    _TEXT,
)


def _check_validator(decoded: StoredValidator | None) -> None:
    if decoded is None:
        return
    assert decoded.etag is not None or decoded.last_modified is not None
    assert 0 <= decoded.length < 2**63
    assert all(valid_field(k, v) for k, v in decoded.headers)
    assert all(valid_field(name, "") for name in decoded.vary)
    assert StoredValidator.from_value(decoded.to_value()) == decoded


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.lists(_PARTS, min_size=1, max_size=7).map(U.join)))
def test_fuzz_validator_decoder_never_raises(value: str) -> None:
    _check_validator(StoredValidator.from_value(value))


@settings(max_examples=600, deadline=None)
@given(st.integers(0, len(GOOD)), st.integers(0, 4), _TEXT)
def test_fuzz_mutated_validator_records(at: int, cut: int, text: str) -> None:
    _check_validator(StoredValidator.from_value(GOOD[:at] + text + GOOD[at + cut :]))


_FIELD_NAMES = st.one_of(
    st.sampled_from(["ETag", "Cache-Control", "Vary", "Last-Modified", "Content-Location", "Content-Length"]),
    _TEXT,
)
_FIELDS = st.lists(st.tuples(_FIELD_NAMES, _TEXT), max_size=5)


@settings(max_examples=600, deadline=None)
@given(_FIELDS, st.one_of(st.none(), st.integers(-(2**70), 2**70)))
def test_fuzz_every_record_stored_decodes_back(fields: list[tuple[str, str]], length: int | None) -> None:
    stored = StoredValidator.from_response(200, [("ETag", '"v1"'), *fields], length=length)
    if stored is not None:
        assert StoredValidator.from_value(stored.to_value()) == stored
        _check_validator(stored)


_JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6), st.binary(max_size=6)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=2), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=600, deadline=None)
@given(
    st.one_of(
        _JSONISH,
        st.fixed_dictionaries(
            {
                "s": st.one_of(st.just(200), _JSONISH),
                "h": st.one_of(
                    st.lists(st.lists(st.one_of(_FIELD_NAMES, _TEXT), max_size=3), max_size=5), _JSONISH
                ),
                "b": st.one_of(st.binary(max_size=8), _JSONISH),
            }
        ),
    )
)
def test_fuzz_response_decoder_never_raises(value: object) -> None:
    decoded = CachedResponse.from_value(value)
    if decoded is not None:
        assert decoded.status == 200 and isinstance(decoded.body, bytes)
        assert all(valid_field(k, v) for k, v in decoded.headers)
        assert CachedResponse.from_value(decoded.to_value()) == decoded


@settings(max_examples=400, deadline=None)
@given(_FIELDS, st.binary(max_size=16))
def test_fuzz_every_response_cached_decodes_back(fields: list[tuple[str, str]], body: bytes) -> None:
    cached = CachedResponse.from_response(200, fields, body, etag=ETag("r1"), last_modified=LAST_MODIFIED)
    if cached is not None:
        assert CachedResponse.from_value(cached.to_value()) == cached
