"""Pins for core/keys.py, core/records.py and core/reply.py that the mutation run showed unpinned.

Their main tests live with the adapters' (test_respond.py, test_stored.py); these add the answers a
wrong change there would otherwise keep passing.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from etagkit.core.etag import ETag
from etagkit.core.headers import fields_of
from etagkit.core.keys import (
    origin_of,
    path_tag,
    representation_key,
    shared_lookup_allowed,
    split_tags,
    variant_key,
)
from etagkit.core.records import CachedResponse, StoredValidator
from etagkit.core.reply import Validator

# -- keys: stable across releases (stored validators outlive a deploy) -------------------------------


def test_known_answer_keys() -> None:
    key = "etagkit:etag:3f9111646e1f172e26501ba49f130877d53f3f94"
    assert representation_key("GET", "/books/1", "b=2&a=1", origin="http://x") == key
    assert representation_key("HEAD", "/books/1", "a=1&b=2", origin="http://x") == key
    assert path_tag("/books/1", "http://x") == "etagkit:path:34731c73264b982bf5a86241"
    variant = variant_key("k", {"Accept": " text/html  , x "}, ["Accept"])
    assert variant == "etagkit:variant:e53b98343f304bd8b467cf5f7addb468323e6218"


@pytest.mark.parametrize(
    ("scheme", "host", "port", "expected"),
    [
        ("HTTP", "Example.COM", None, "http://example.com"),
        ("http", "example.com:80", None, "http://example.com"),
        ("https", "example.com:443", None, "https://example.com"),
        ("http", "example.com:443", None, "http://example.com:443"),
        ("https", "example.com", 8443, "https://example.com:8443"),
        ("https", "example.com", "443", "https://example.com"),
        ("http", "example.com:8080", 9090, "http://example.com:8080"),  # the Host's own port wins
        ("http", "example.com:", None, "http://example.com"),  # empty port: the default
        ("http", " \texample.com\t ", None, "http://example.com"),
        ("http", "[::1]", 8080, "http://[::1]:8080"),
        ("http", "[::1]:80", None, "http://[::1]"),
        ("http", "[::1]", None, "http://[::1]"),
        ("ftp", "example.com:21", None, "ftp://example.com:21"),  # no default port known for ftp
    ],
)
def test_origin_of(scheme: str, host: str, port: int | str | None, expected: str) -> None:
    assert origin_of(scheme, host, port) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ("", ()),
        ("a b,c , a", ("a", "b", "c")),
        ("*, a", ("a",)),
        ("a\tb", ("a", "b")),
    ],
)
def test_split_tags(value: str | None, expected: tuple[str, ...]) -> None:
    assert split_tags(value) == expected


def test_shared_lookups_read_indexed_fields_too() -> None:
    for headers in ([("Authorization", "Bearer x")], [("COOKIE", "a=1")]):
        assert shared_lookup_allowed(fields_of(headers), None) is False
        assert shared_lookup_allowed(headers, None) is False
        assert shared_lookup_allowed(fields_of(headers), "user:1") is True
    assert shared_lookup_allowed(fields_of([("Accept", "*/*")]), None) is True


def test_origin_trims_only_ows() -> None:
    assert origin_of("http", "XN--bcher-kva.example") == "http://xn--bcher-kva.example"
    assert origin_of("http", "example.com\xa0") == "http://example.com\xa0"  # not OWS: its own origin


def test_keys_take_paths_with_lone_surrogates() -> None:
    """A WSGI path is latin-1 text, but a server may hand a surrogate-escaped one: still a key."""
    key = representation_key("GET", "/caf\udce9")
    assert key.startswith("etagkit:etag:") and key != representation_key("GET", "/caf\xe9")
    assert path_tag("/caf\udce9") != path_tag("/caf\xe9")


# -- records: stored validators ------------------------------------------------------------------------

LM = datetime(2024, 1, 1, tzinfo=UTC)


def test_stored_validator_encoding_is_stable() -> None:
    """Records outlive a deploy: the encoding is a format, not an implementation detail."""
    full = StoredValidator(
        ETag("a"),
        LM,
        (("Cache-Control", "max-age=5"), ("Link", "<a>; rel: x")),
        ("accept", "accept-encoding"),
        42,
    )
    encoded = (
        'etagkit-validator-1\x1f"a"\x1fMon, 01 Jan 2024 00:00:00 GMT\x1f42\x1faccept,accept-encoding'
        "\x1fCache-Control: max-age=5\x1eLink: <a>; rel: x"
    )
    assert full.to_value() == encoded
    assert StoredValidator.from_value(encoded) == full
    only_date = StoredValidator(None, LM)
    assert only_date.to_value() == "etagkit-validator-1\x1f\x1fMon, 01 Jan 2024 00:00:00 GMT\x1f0\x1f\x1f"
    assert StoredValidator.from_value(only_date.to_value()) == only_date
    only_tag = StoredValidator(ETag("a"))
    assert only_tag.to_value() == 'etagkit-validator-1\x1f"a"\x1f\x1f0\x1f\x1f'
    assert StoredValidator.from_value(only_tag.to_value()) == only_tag
    assert StoredValidator.from_value("etagkit-validator-1\x1f\x1f\x1f0\x1f\x1f") is None  # no validator


def test_a_record_gives_its_validator() -> None:
    assert StoredValidator(ETag("a"), LM).validator() == Validator(ETag("a"), LM, True)


def test_stored_validator_from_response() -> None:
    headers = [("ETag", '"a"'), ("Content-Length", "99"), ("Cache-Control", "max-age=5")]
    record = StoredValidator.from_response(200, headers, ETag("b"), 5)
    assert record == StoredValidator(
        ETag("b"), None, (("Cache-Control", "max-age=5"), ("ETag", '"b"')), (), 5
    )
    assert StoredValidator.from_response(200, headers).length == 99  # type: ignore[union-attr]
    assert StoredValidator.from_response(200, headers[:1]).length == 0  # type: ignore[union-attr]
    tagged = StoredValidator.from_response(200, [("Cache-Control", "max-age=5")], ETag("c"))
    assert tagged is not None and ("ETag", '"c"') in tagged.headers
    for status in (199, 300, 304, 404):
        assert StoredValidator.from_response(status, headers) is None
    assert StoredValidator.from_response(299, headers) is not None


def test_stored_validator_from_unhashable_header_pairs() -> None:
    pairs = [["ETag", '"a"'], ["Cache-Control", "max-age=5"]]
    as_tuples = [("ETag", '"a"'), ("Cache-Control", "max-age=5")]
    for args in ((), (ETag("b"),), (ETag("b"), 7), (None, 7)):
        built = StoredValidator.from_response(200, pairs, *args)  # type: ignore[arg-type]
        assert built == StoredValidator.from_response(200, as_tuples, *args)
        assert built is not None
    assert StoredValidator.from_response(300, pairs) is None  # type: ignore[arg-type]


# -- records: cached responses -------------------------------------------------------------------------

OK = [("ETag", '"a"'), ("Content-Type", "text/plain")]


@pytest.mark.parametrize(
    ("status", "extra"),
    [
        (201, []),
        (206, []),
        (200, [("Set-Cookie", "a=1")]),
        (200, [("Expires", "Mon, 01 Jan 2024 00:00:00 GMT")]),
        (200, [("Cache-Control", "no-store")]),
        (200, [("Cache-Control", "private")]),
        (200, [("Cache-Control", "max-age=5, private")]),
        (200, [("Vary", "Accept, *")]),
    ],
)
def test_cached_response_refusals(status: int, extra: list[tuple[str, str]]) -> None:
    assert CachedResponse.from_response(status, [*OK, *extra], b"x") is None


def test_cached_response_needs_a_validator_and_keeps_what_it_may() -> None:
    assert CachedResponse.from_response(200, [("Content-Type", "text/plain")], b"x") is None
    kept = CachedResponse.from_response(
        200, [*OK, ("Cache-Control", "public, max-age=5"), ("Vary", "Accept")], b"x"
    )
    assert kept is not None and kept.vary == ("accept",)
    dated = CachedResponse.from_response(200, [("Content-Type", "text/plain")], b"x", last_modified=LM)
    assert dated is not None and ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT") in dated.headers
