"""Pins for core/keys.py, core/records.py and core/reply.py that the mutation run showed unpinned.

Their main tests live with the adapters' (test_respond.py, test_stored.py); these add the answers a
wrong change there would otherwise keep passing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from etagkit._environ import EnvironHeaders
from etagkit.core.etag import ETag, generate_etag
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
from etagkit.core.reply import (
    Reply,
    Validator,
    body_needed,
    check_preconditions,
    coded_etag,
    conditional_response,
    error_reply,
    is_conditional,
    wants_json,
)

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
        (("Cache-Control", "max-age=5"), ("Content-Location", "/a: b")),
        ("accept", "accept-encoding"),
        42,
    )
    encoded = (
        'etagkit-validator-1\x1f"a"\x1fMon, 01 Jan 2024 00:00:00 GMT\x1f42\x1faccept,accept-encoding'
        "\x1fCache-Control: max-age=5\x1eContent-Location: /a: b"
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


# -- reply: error documents, JSON negotiation ----------------------------------------------------------

_CHANGED = "The resource changed: a precondition in the request evaluated to false."
_REQUIRED = "This request is required to be conditional: send If-Match with the current ETag."


@pytest.mark.parametrize(
    ("status", "title", "detail"),
    [(412, "Precondition Failed", _CHANGED), (428, "Precondition Required", _REQUIRED)],
)
def test_error_documents_are_exact(status: int, title: str, detail: str) -> None:
    plain = error_reply(status)
    text = f"{status} {title}: {detail}\n".encode()
    assert plain == Reply(
        status, (("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(text)))), text
    )
    problem = error_reply(status, json_body=True)
    assert json.loads(problem.body or b"") == {"status": status, "title": title, "detail": detail}
    assert problem.headers == (
        ("Content-Type", "application/problem+json"),
        ("Content-Length", str(len(problem.body or b""))),
    )


@pytest.mark.parametrize(
    ("request_headers", "response_headers", "expected"),
    [
        ({}, [("Content-Type", "text/plain; profile=json")], False),  # a parameter is not the type
        ({}, [("Content-Type", "text/plain; a=json; b=1")], False),
        ({}, [("Content-Type", "application/problem+json; charset=utf-8")], True),
        ({"Content-Type": "application/json"}, [], True),
        ({"Accept": "application/json"}, [("Content-Type", "text/html")], True),
        ({"Accept": "application/json, text/html"}, [], False),
        ({}, [], False),
    ],
)
def test_wants_json(
    request_headers: dict[str, str], response_headers: list[tuple[str, str]], expected: bool
) -> None:
    assert wants_json(request_headers, response_headers) is expected


# -- reply: check_preconditions --------------------------------------------------------------------------

JSON = {"Accept": "application/json"}


def _ctype(reply: Reply | None) -> str | None:
    assert reply is not None
    return dict(reply.headers)["Content-Type"]


def test_check_preconditions_error_format_follows_json_errors_or_the_request() -> None:
    stale = {"If-Match": '"old"', **JSON}
    current = Validator(ETag("new"))
    assert _ctype(check_preconditions("PUT", stale, current)) == "application/problem+json"
    assert (
        _ctype(check_preconditions("PUT", stale, current, json_errors=False)) == "text/plain; charset=utf-8"
    )
    assert (
        _ctype(check_preconditions("PUT", {"If-Match": '"old"'}, current, json_errors=True))
        == "application/problem+json"
    )
    assert (
        _ctype(check_preconditions("PUT", JSON, None, require_precondition=True))
        == "application/problem+json"
    )
    required = check_preconditions("PUT", JSON, None, require_precondition=True, json_errors=False)
    assert _ctype(required) == "text/plain; charset=utf-8"


def test_check_preconditions_uses_last_modified() -> None:
    dated = Validator(None, LM)
    since = {"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}
    reply = check_preconditions("GET", since, dated, response_headers=[("Cache-Control", "max-age=5")])
    assert reply is not None and reply.status == 304
    assert reply.headers == (
        ("Cache-Control", "max-age=5"),
        ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
    )
    failed = check_preconditions("PUT", {"If-Unmodified-Since": "Sun, 31 Dec 2023 00:00:00 GMT"}, dated)
    assert failed is not None and failed.status == 412


def test_a_304_from_unhashable_header_pairs_is_the_same() -> None:
    validator = Validator(ETag("a"), LM)
    hashable = check_preconditions(
        "GET", {"If-None-Match": '"a"'}, validator, response_headers=(("Vary", "Accept"),)
    )
    pairs = check_preconditions(
        "GET", {"If-None-Match": '"a"'}, validator, response_headers=[["Vary", "Accept"]]
    )  # type: ignore[list-item]
    assert hashable == pairs == Reply(304, (("Vary", "Accept"), ("ETag", '"a"')), b"", ETag("a"))


# -- reply: conditional_response ----------------------------------------------------------------------------


def test_conditional_response_leaves_non_2xx_alone() -> None:
    for status in (199, 300, 304, 404):
        assert conditional_response("GET", {}, status, [], b"x") == Reply(status, ())
    assert conditional_response("GET", {}, 299, [], b"x").etag is None  # a 2xx other than 200: not hashed
    assert conditional_response("GET", {}, 200, [], b"x").etag == generate_etag(b"x")


def test_conditional_response_weak_tags_and_response_dates() -> None:
    assert conditional_response("GET", {}, 200, [], b"x", weak=True).etag == generate_etag(b"x", weak=True)
    dated = [("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")]
    since = {"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}
    assert conditional_response("GET", since, 200, dated).status == 304
    assert (
        conditional_response("GET", since, 200, [("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")]).status
        == 304
    )


def test_a_412_keeps_the_tag_and_negotiates_its_format() -> None:
    failed = conditional_response(
        "GET", {"If-Match": '"x"', **JSON}, 200, [("Content-Type", "text/html")], b"x"
    )
    assert failed.status == 412 and failed.etag == generate_etag(b"x")
    assert dict(failed.headers)["Content-Type"] == "application/problem+json"
    plain = conditional_response("GET", {"If-Match": '"x"'}, 200, [("Content-Type", "text/html")], b"x")
    assert dict(plain.headers)["Content-Type"] == "text/plain; charset=utf-8"


def _named(reply: Reply, name: str) -> list[str]:
    return [v for k, v in reply.headers if k.lower() == name]


LM2 = datetime(2024, 2, 1, tzinfo=UTC)
LM2_TEXT = "Thu, 01 Feb 2024 00:00:00 GMT"


@pytest.mark.parametrize(
    ("headers", "etag", "last_modified", "etags", "dates"),
    [
        ([("ETag", '"a"')], '"b"', None, ['"b"'], []),  # the given tag replaces the view's
        ([("ETag", '"a"')], None, LM2, ['"a"'], [LM2_TEXT]),
        (
            [("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")],
            None,
            LM2,
            [str(generate_etag(b"x"))],
            [LM2_TEXT],
        ),
        (
            [("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")],
            '"b"',
            None,
            ['"b"'],
            ["Mon, 01 Jan 2024 00:00:00 GMT"],
        ),
        ([], None, LM2, [str(generate_etag(b"x"))], [LM2_TEXT]),
        ([], '"b"', LM2, ['"b"'], [LM2_TEXT]),
    ],
)
def test_given_validators_replace_the_views_own_exactly_once(
    headers: list[tuple[str, str]],
    etag: str | None,
    last_modified: datetime | None,
    etags: list[str],
    dates: list[str],
) -> None:
    reply = conditional_response("GET", {}, 200, headers, b"x", etag=etag, last_modified=last_modified)
    assert _named(reply, "etag") == etags
    assert _named(reply, "last-modified") == dates


# -- reply: body_needed, coded_etag, is_conditional ------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, True),
        ({"ETag": '"a"'}, False),
        ({"Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}, False),
        ({"Cache-Control": "no-store"}, False),
    ],
)
def test_body_needed_reads_every_header_shape(headers: dict[str, str], expected: bool) -> None:
    assert body_needed("GET", 200, headers) is expected
    assert body_needed("GET", 200, list(headers.items())) is expected
    assert body_needed("GET", 200, fields_of(headers.items())) is expected


@pytest.mark.parametrize(
    ("coding", "expected"),
    [
        ("gzip", "t-gzip"),
        ("gzip, br", "t-gzip+br"),
        (" GZIP ,\tbr ", "t-gzip+br"),
        ("identity, gzip", "t-gzip"),
        ("x-gzip", "t-x-gzip"),
        ("gzip\xa0", "t"),  # not a token once only OWS is trimmed: ignored
        ("", "t"),
    ],
)
def test_coded_etag(coding: str, expected: str) -> None:
    assert coded_etag(ETag("t"), coding) == ETag(expected)


def test_is_conditional_over_a_field_view() -> None:
    assert is_conditional(EnvironHeaders({"HTTP_ACCEPT": "*/*"})) is False
    assert is_conditional(EnvironHeaders({"HTTP_IF_NONE_MATCH": '"a"'})) is True
    assert is_conditional(EnvironHeaders({"HTTP_IF_UNMODIFIED_SINCE": "x"})) is True


def test_a_304_from_unhashable_pairs_keeps_last_modified_without_an_etag() -> None:
    since = {"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}
    pairs = [["Vary", "Accept"]]
    reply = check_preconditions("GET", since, Validator(None, LM), response_headers=pairs)  # type: ignore[arg-type]
    assert reply == Reply(
        304, (("Vary", "Accept"), ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")), b"", None
    )


def test_a_3xx_with_validators_is_never_evaluated() -> None:
    for status in (300, 301):
        headers = [("ETag", '"a"'), ("Location", "/x")]
        assert conditional_response("GET", {"If-None-Match": '"a"'}, status, headers) == Reply(
            status, tuple(headers)
        )


def test_codings_are_lower_cased_after_trimming() -> None:
    assert coded_etag(ETag("t"), "X-GZIP") == ETag("t-x-gzip")


# -- records: a stored validator that does not decode exactly is a miss ------------------------------------

_HEAD = "etagkit-validator-1\x1f"
_DATE = "Mon, 01 Jan 2024 00:00:00 GMT"


@pytest.mark.parametrize(
    ("value", "decodes"),
    [
        (f'{_HEAD}"a"\x1f{_DATE}\x1f0\x1f\x1f', True),
        (f'{_HEAD}"a"\x1f\x1f9223372036854775807\x1f\x1f', True),  # 2**63 - 1: the largest count
        (f'{_HEAD}"a"\x1f\x1f9223372036854775808\x1f\x1f', False),  # 19 digits over the range
        (f'{_HEAD}"a"\x1f\x1f00000000000000000007\x1f\x1f', False),  # 20 digits
        (f'{_HEAD}"a"\x1f\x1f\x1f\x1f', False),  # no count
        (f'{_HEAD}"a"\x1f\x1f\xb2\x1f\x1f', False),  # '²' is a digit to str.isdigit, not a count
        (f"{_HEAD}junk\x1f{_DATE}\x1f0\x1f\x1f", False),  # a bad tag voids the record, even with a date
        (f'{_HEAD} "a"\x1f\x1f0\x1f\x1f', False),  # a tag that does not re-encode exactly
        (f'{_HEAD}"a"\x1fnot a date\x1f0\x1f\x1f', False),
        (f'{_HEAD}"a"\x1f\x1f0\x1fAccept\x1f', False),  # Vary names are stored lower-cased
        (f'{_HEAD}"a"\x1f\x1f0\x1fa b\x1f', False),  # and are tokens
        (f'{_HEAD}"a"\x1f\x1f0\x1f\x1fSet-Cookie: a=1', False),  # only validator fields are kept
        (f'{_HEAD}"a"\x1f\x1f0\x1f\x1fCache-Control: a\x00b', False),  # an invalid field value
        (f'{_HEAD}"a"\x1f\x1f0\x1f\x1f' + "Cache-Control: " + "a" * 16 * 1024, False),  # over the size cap
    ],
)
def test_stored_validator_decoding_refuses_anything_inexact(value: str, decodes: bool) -> None:
    assert (StoredValidator.from_value(value) is not None) is decodes
