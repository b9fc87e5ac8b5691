"""evaluate() in RFC 9110 §13.2.2 order, If-Range (§13.1.5), 304 headers (§15.4.5), 428 (RFC 6585)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etagkit import (
    ConditionalPolicy,
    ConfigurationError,
    ETag,
    InvalidETagError,
    Outcome,
    evaluate,
    format_http_date,
    not_modified_headers,
    range_applies,
    requires_precondition,
)
from etagkit.core.headers import Fields, FieldView, fields_of, get_header

LM = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
SAME = "Mon, 01 Jan 2024 12:00:00 GMT"
BEFORE = "Mon, 01 Jan 2024 11:59:59 GMT"
AFTER = "Mon, 01 Jan 2024 12:00:01 GMT"
P, N, F = Outcome.PROCEED, Outcome.NOT_MODIFIED, Outcome.PRECONDITION_FAILED


def status(method: str, headers: dict[str, str], **kw: object) -> int:
    kw.setdefault("etag", '"v1"')
    kw.setdefault("last_modified", LM)
    return evaluate(method, headers, **kw).status or 200  # type: ignore[arg-type]


def test_outcome_statuses() -> None:
    assert [o.status for o in Outcome] == [None, 304, 412]
    assert [o.name for o in Outcome] == ["PROCEED", "NOT_MODIFIED", "PRECONDITION_FAILED"]


# --- entity-tag conditions: the weak/strong matrix -------------------------------------------------


@pytest.mark.parametrize(
    ("member", "current", "if_match", "if_none_match_get", "if_none_match_put"),
    [
        ('"v1"', '"v1"', 200, 304, 412),
        ('"v1"', 'W/"v1"', 412, 304, 412),
        ('W/"v1"', '"v1"', 412, 304, 412),
        ('W/"v1"', 'W/"v1"', 412, 304, 412),
        ('"v2"', '"v1"', 412, 200, 200),
        ('W/"v2"', 'W/"v1"', 412, 200, 200),
    ],
)
def test_weak_strong_matrix(
    member: str, current: str, if_match: int, if_none_match_get: int, if_none_match_put: int
) -> None:
    assert status("PUT", {"If-Match": member}, etag=current) == if_match
    assert status("GET", {"If-Match": member}, etag=current) == if_match
    assert status("GET", {"If-None-Match": member}, etag=current) == if_none_match_get
    assert status("HEAD", {"If-None-Match": member}, etag=current) == if_none_match_get
    assert status("PUT", {"If-None-Match": member}, etag=current) == if_none_match_put


@pytest.mark.parametrize(
    ("header", "exists", "etag", "get", "put"),
    [
        ("If-Match", True, '"v1"', 200, 200),
        ("If-Match", True, None, 200, 200),  # exists without any validator: '*' still true
        ("If-Match", False, None, 412, 412),
        ("If-None-Match", True, '"v1"', 304, 412),
        ("If-None-Match", True, None, 304, 412),
        ("If-None-Match", False, None, 200, 200),  # create-only PUT proceeds
    ],
)
def test_star_depends_on_existence_only(
    header: str, exists: bool, etag: str | None, get: int, put: int
) -> None:
    assert status("GET", {header: "*"}, etag=etag, exists=exists) == get
    assert status("PUT", {header: "*"}, etag=etag, exists=exists) == put


def test_nonexistent_target_ignores_the_given_validators() -> None:
    assert status("PUT", {"If-Match": '"v1"'}, etag='"v1"', exists=False) == 412
    assert status("GET", {"If-None-Match": '"v1"'}, etag='"v1"', exists=False) == 200
    assert status("GET", {"If-Modified-Since": AFTER}, exists=False) == 200
    assert status("PUT", {"If-Unmodified-Since": BEFORE}, exists=False) == 200


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"If-None-Match": '"a", "v1"'}, 304),
        ({"If-None-Match": '  "a" ,, W/"v1" , '}, 304),
        ({"If-None-Match": '"a,v1"'}, 200),  # one member holding a comma
        ({"If-None-Match": 'v1, "a"'}, 200),  # bare token ignored
        ({"If-None-Match": 'w/"v1"'}, 200),
        ({"If-None-Match": "*, v1"}, 200),
        ({"If-Match": 'v1, "a"'}, 412),  # only invalid/other members: false, not absent
        ({"If-Match": "v1"}, 412),
        ({"If-Match": 'w/"v1"'}, 412),
        ({"If-Match": '"a", "v1"'}, 200),
        ({"If-Match": ""}, 200),  # empty field value: no condition
        ({"If-None-Match": ", ,", "If-Modified-Since": SAME}, 304),  # empty list: IMS decides
    ],
)
def test_list_readings(headers: dict[str, str], expected: int) -> None:
    assert status("GET", headers) == expected


# --- dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (SAME, 304),
        (AFTER, 304),
        (BEFORE, 200),
        ("Monday, 01-Jan-24 12:00:00 GMT", 304),  # rfc850-date
        ("Mon Jan  1 12:00:00 2024", 304),  # asctime-date
        ("Mon Jan 01 12:00:00 2024", 304),
        ("mon, 01 Jan 2024 12:00:00 GMT", 200),  # invalid: ignored
        ("Mon, 01 Jan 2024 12:00:00 UTC", 200),
        ("Mon, 01 Jan 2024 12:00:00 +0000", 200),
        ("2024-01-01T12:00:00Z", 200),
        (f"{SAME}; length=42", 200),
        (f"{SAME}, {SAME}", 200),  # more than one member: invalid
        ("Mon, 32 Jan 2024 12:00:00 GMT", 200),
        ("Mon, 01 Jan 2024 25:00:00 GMT", 200),
        ("", 200),
        ("\x00\xff\u20ac", 200),
        ("x" * 100_000, 200),
    ],
)
def test_if_modified_since(since: str, expected: int) -> None:
    assert status("GET", {"If-Modified-Since": since}) == expected
    assert status("HEAD", {"If-Modified-Since": since}) == expected


def test_repeated_if_modified_since_lines_are_invalid() -> None:
    headers = [("If-Modified-Since", SAME), ("If-Modified-Since", SAME)]
    assert evaluate("GET", headers, etag=None, last_modified=LM) is P
    assert evaluate("GET", headers[:1], etag=None, last_modified=LM) is N


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "PATCH"])
def test_if_modified_since_ignored_for_other_methods(method: str) -> None:
    assert status(method, {"If-Modified-Since": AFTER}) == 200


def test_if_modified_since_ignored_without_last_modified_or_with_if_none_match() -> None:
    assert status("GET", {"If-Modified-Since": AFTER}, last_modified=None) == 200
    assert status("GET", {"If-Modified-Since": AFTER, "If-None-Match": '"other"'}) == 200
    assert status("GET", {"If-Modified-Since": BEFORE, "If-None-Match": '"v1"'}) == 304


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (SAME, 200),
        (AFTER, 200),
        (BEFORE, 412),
        ("Sunday, 31-Dec-23 00:00:00 GMT", 412),
        ("Sun Dec 31 00:00:00 2023", 412),
        ("garbage", 200),
        (f"{BEFORE}; length=1", 200),
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "POST"])
def test_if_unmodified_since(method: str, since: str, expected: int) -> None:
    assert status(method, {"If-Unmodified-Since": since}) == expected


def test_if_unmodified_since_ignored_without_last_modified_or_with_if_match() -> None:
    assert status("PUT", {"If-Unmodified-Since": BEFORE}, last_modified=None) == 200
    assert status("PUT", {"If-Unmodified-Since": BEFORE, "If-Match": '"v1"'}) == 200
    assert status("PUT", {"If-Unmodified-Since": AFTER, "If-Match": '"v0"'}) == 412


def test_one_second_resolution() -> None:
    precise = LM + timedelta(microseconds=999_999)
    assert status("GET", {"If-Modified-Since": SAME}, last_modified=precise) == 304
    assert status("PUT", {"If-Unmodified-Since": SAME}, last_modified=precise) == 200
    assert status("GET", {"If-Modified-Since": SAME}, last_modified=LM + timedelta(seconds=1)) == 200


def test_last_modified_in_any_zone() -> None:
    local = LM.astimezone(timezone(timedelta(hours=-5)))
    assert status("GET", {"If-Modified-Since": SAME}, last_modified=local) == 304


# --- order (§13.2.2) and methods -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", {"If-Match": '"v0"', "If-None-Match": '"v1"'}, 412),  # step 1 first
        ("GET", {"If-Match": '"v1"', "If-None-Match": '"v1"'}, 304),
        ("PUT", {"If-Match": '"v1"', "If-None-Match": '"v1"'}, 412),
        ("GET", {"If-Unmodified-Since": BEFORE, "If-None-Match": '"v1"'}, 412),  # step 2 before 3
        ("GET", {"If-Unmodified-Since": SAME, "If-None-Match": '"v1"'}, 304),
        ("GET", {"If-Match": '"v1"', "If-Modified-Since": SAME}, 304),
        ("GET", {"If-Match": '"v1"', "If-Unmodified-Since": BEFORE, "If-Modified-Since": SAME}, 304),
        ("GET", {"If-Unmodified-Since": BEFORE, "If-Modified-Since": SAME}, 412),
        ("GET", {"If-None-Match": '"x"', "If-Modified-Since": SAME}, 200),
    ],
)
def test_order(method: str, headers: dict[str, str], expected: int) -> None:
    assert status(method, headers) == expected


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "CONNECT", "options"])
def test_methods_without_representation_ignore_preconditions(method: str) -> None:
    headers = {"If-Match": '"nope"', "If-Unmodified-Since": BEFORE, "If-None-Match": '"v1"'}
    assert status(method, headers) == 200


@pytest.mark.parametrize(
    ("method", "if_none_match"),
    [("GET", 304), ("HEAD", 304), ("get", 304), ("POST", 412), ("PUT", 412), ("DELETE", 412), ("PATCH", 412)],
)
def test_if_none_match_outcome_by_method(method: str, if_none_match: int) -> None:
    assert status(method, {"If-None-Match": '"v1"'}) == if_none_match
    assert status(method, {"If-Match": '"v0"'}) == 412
    assert status(method, {"If-None-Match": '"v0"'}) == 200


def test_no_conditions_proceed() -> None:
    assert evaluate("GET", {}, etag=None) is P
    assert evaluate("DELETE", {"Accept": "*/*"}, etag='"v1"', last_modified=LM) is P


# --- inputs ---------------------------------------------------------------------------------------


def test_headers_any_case_mapping_or_pairs() -> None:
    assert evaluate("GET", {"if-none-match": '"v1"'}, etag=ETag("v1")) is N
    assert evaluate("GET", {"IF-NONE-MATCH": '"v1"'}, etag=ETag("v1")) is N
    assert evaluate("GET", [("If-None-Match", '"a"'), ("if-none-match", '"v1"')], etag=ETag("v1")) is N
    assert evaluate("GET", (("If-Match", '"x"'),), etag='W/"x"') is F


def test_application_mistakes_raise() -> None:
    with pytest.raises(InvalidETagError):
        evaluate("GET", {}, etag="v1")  # an unquoted string is not an ETag header value
    with pytest.raises(InvalidETagError):
        evaluate("GET", {}, etag=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        evaluate("GET", {}, etag=None, last_modified=datetime(2024, 1, 1))  # naive
    with pytest.raises(ConfigurationError):
        evaluate("GET", {}, etag=None, last_modified=SAME)  # type: ignore[arg-type]


# --- policies beyond the vectors -------------------------------------------------------------------


def test_request_no_cache_policy_only_touches_304() -> None:
    policy = ConditionalPolicy(request_no_cache_forces_200=True)
    headers = {"Cache-Control": "max-age=0, no-cache", "If-None-Match": '"v1"'}
    assert status("GET", headers, policy=policy) == 200
    assert status("GET", headers) == 304
    assert status("PUT", headers, policy=policy) == 412  # a 412 stays a 412
    assert status("GET", {"Cache-Control": "max-age=0", "If-None-Match": '"v1"'}, policy=policy) == 304
    assert status("GET", {"If-Modified-Since": SAME}, policy=policy) == 304


def test_ie_length_suffix_policy() -> None:
    policy = ConditionalPolicy(accept_ie_length_suffix=True)
    assert status("GET", {"If-Modified-Since": f"{SAME}; length=13774"}, policy=policy) == 304
    assert status("GET", {"If-Modified-Since": f"{SAME} ;length=1 "}, policy=policy) == 304
    assert status("GET", {"If-Modified-Since": f"{SAME}; foo=1"}, policy=policy) == 200
    assert status("GET", {"If-Modified-Since": SAME + " " * 200 + "; length=1"}, policy=policy) == 200
    assert status("GET", {}, policy=policy) == 200
    assert status("PUT", {"If-Unmodified-Since": f"{BEFORE}; length=1"}, policy=policy) == 200


def test_no_etag_means_no_representation_policy() -> None:
    policy = ConditionalPolicy(no_etag_means_no_representation=True)
    assert status("GET", {"If-None-Match": "*"}, etag=None, policy=policy) == 200
    assert status("PUT", {"If-Match": "*"}, etag=None, policy=policy) == 412
    assert status("PUT", {"If-Match": "*"}, etag='"v1"', policy=policy) == 200
    assert status("GET", {"If-Modified-Since": SAME}, etag=None, policy=policy) == 200


def test_strict_and_permissive_policies_in_evaluate() -> None:
    strict = ConditionalPolicy(strict_field=True)
    permissive = ConditionalPolicy(permissive=True)
    assert status("GET", {"If-None-Match": '"v1", junk'}, policy=strict) == 200
    assert status("PUT", {"If-Match": '"v1", junk'}, policy=strict) == 412
    assert status("GET", {"If-None-Match": "v1"}, policy=permissive) == 304
    assert status("PUT", {"If-Match": "v1"}, policy=permissive) == 200
    assert status("PUT", {"If-Match": 'w/"v1"'}, policy=permissive) == 412  # weak: strong comparison fails


# --- If-Range (step 5) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "etag", "last_modified", "expected"),
    [
        ({"Range": "bytes=0-4"}, '"a"', LM, True),
        ({}, '"a"', LM, False),
        ({"If-Range": '"a"'}, '"a"', LM, False),  # no Range: nothing to apply
        ({"Range": "bytes=0-4", "If-Range": '"a"'}, '"a"', None, True),
        ({"Range": "bytes=0-4", "If-Range": ' "a" '}, '"a"', None, True),
        ({"Range": "bytes=0-4", "If-Range": '"b"'}, '"a"', None, False),
        ({"Range": "bytes=0-4", "If-Range": 'W/"a"'}, '"a"', None, False),  # weak never matches
        ({"Range": "bytes=0-4", "If-Range": '"a"'}, 'W/"a"', None, False),
        ({"Range": "bytes=0-4", "If-Range": '"a"'}, None, LM, False),
        ({"Range": "bytes=0-4", "If-Range": '"a", "b"'}, '"a"', None, False),
        ({"Range": "bytes=0-4", "If-Range": '"a'}, '"a"', None, False),
        ({"Range": "bytes=0-4", "If-Range": "a"}, '"a"', None, False),
        ({"Range": "bytes=0-4", "If-Range": SAME}, None, LM, True),
        ({"Range": "bytes=0-4", "If-Range": SAME}, '"a"', LM + timedelta(microseconds=5), True),
        ({"Range": "bytes=0-4", "If-Range": "Monday, 01-Jan-24 12:00:00 GMT"}, None, LM, True),
        ({"Range": "bytes=0-4", "If-Range": AFTER}, None, LM, False),  # exact match only
        ({"Range": "bytes=0-4", "If-Range": BEFORE}, None, LM, False),
        ({"Range": "bytes=0-4", "If-Range": SAME}, '"a"', None, False),  # no Last-Modified
        ({"Range": "bytes=0-4", "If-Range": ""}, '"a"', LM, False),
        ({"Range": "bytes=0-4", "If-Range": "\u20ac" * 10_000}, '"a"', LM, False),
    ],
)
def test_range_applies(
    headers: dict[str, str], etag: str | None, last_modified: datetime | None, expected: bool
) -> None:
    assert range_applies(headers, etag=etag, last_modified=last_modified) is expected


def test_range_only_for_get() -> None:
    headers = {"Range": "bytes=0-4"}
    assert range_applies(headers, etag=None, last_modified=None, method="get")
    assert not range_applies(headers, etag=None, last_modified=None, method="HEAD")
    assert not range_applies(headers, etag=None, last_modified=None, method="PUT")


def test_range_applies_checks_application_inputs() -> None:
    with pytest.raises(InvalidETagError):
        range_applies({}, etag="nope", last_modified=None)
    with pytest.raises(ConfigurationError):
        range_applies({}, etag=None, last_modified=datetime(2024, 1, 1))


# --- 304 headers (§15.4.5) ------------------------------------------------------------------------


def test_not_modified_headers_keeps_order_and_repeats() -> None:
    headers = [
        ("Content-Type", "text/html"),
        ("Vary", "Accept"),
        ("ETag", '"a"'),
        ("Content-Length", "5"),
        ("Last-Modified", SAME),
        ("vary", "Accept-Encoding"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("cache-control", "no-cache"),
        ("Expires", "0"),
        ("Date", SAME),
        ("Content-Location", "/x"),
        ("Content-Encoding", "gzip"),
    ]
    assert not_modified_headers(headers) == [
        ("Vary", "Accept"),
        ("ETag", '"a"'),
        ("vary", "Accept-Encoding"),
        ("cache-control", "no-cache"),
        ("Expires", "0"),
        ("Date", SAME),
        ("Content-Location", "/x"),
    ]
    with_cookies = not_modified_headers(headers, set_cookie=True)
    assert [v for k, v in with_cookies if k == "Set-Cookie"] == ["a=1", "b=2"]


def test_last_modified_only_without_etag() -> None:
    assert not_modified_headers({"Last-Modified": SAME, "Content-Type": "x"}) == [("Last-Modified", SAME)]
    assert not_modified_headers({"Last-Modified": SAME, "etag": '"a"'}) == [("etag", '"a"')]
    assert not_modified_headers([]) == []


def test_format_http_date_feeds_evaluate() -> None:
    assert status("GET", {"If-Modified-Since": format_http_date(LM)}) == 304


# --- 428 policy (RFC 6585 §3) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", {}, False),
        ("HEAD", {}, False),
        ("OPTIONS", {}, False),
        ("TRACE", {}, False),
        ("CONNECT", {}, False),
        ("PUT", {}, True),
        ("put", {}, True),
        ("DELETE", {}, True),
        ("PATCH", {}, True),
        ("POST", {}, False),  # POST creates or processes: there is no representation to overwrite
        ("PROPPATCH", {}, True),  # unknown unsafe methods stay guarded
        ("PUT", {"If-Match": '"a"'}, False),
        ("PUT", {"If-Match": "*"}, False),
        ("PUT", {"If-Match": "garbage"}, False),  # conditional (and will fail with 412)
        ("PUT", {"If-Match": ""}, True),
        ("PUT", {"If-None-Match": "*"}, False),
        ("PUT", {"If-Unmodified-Since": SAME}, False),
        ("PUT", {"If-Unmodified-Since": "garbage"}, True),  # an invalid date is ignored: unconditional
        ("PUT", {"If-Modified-Since": SAME}, True),  # IMS does not apply to PUT
    ],
)
def test_requires_precondition(method: str, headers: dict[str, str], expected: bool) -> None:
    assert requires_precondition(method, headers) is expected


# -- header sources: the fast paths read the same fields as the scanning one ------------------------


class _UpperView(FieldView):
    """A case-insensitive view over upper-cased names, like a WSGI environ."""

    def __init__(self, fields: dict[str, str]) -> None:
        self._fields = {k.upper(): v for k, v in fields.items()}

    def get(self, name: str, default: object = None) -> object:  # type: ignore[override]
        return self._fields.get(name.upper(), default)

    def __getitem__(self, name: str) -> str:
        return self._fields[name.upper()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


@given(
    st.dictionaries(
        st.sampled_from(["If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"]),
        st.sampled_from(['"a"', 'W/"a"', '"b"', "*", "", "Sun, 06 Nov 1994 08:49:37 GMT", "junk"]),
    ),
    st.sampled_from(["GET", "HEAD", "PUT", "DELETE"]),
)
def test_fields_and_field_views_evaluate_like_plain_mappings(fields: dict[str, str], method: str) -> None:
    modified = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)
    expected = evaluate(method, fields, etag='"a"', last_modified=modified)
    lowered = Fields({k.lower(): v for k, v in fields.items()})
    assert evaluate(method, lowered, etag='"a"', last_modified=modified) is expected
    assert evaluate(method, _UpperView(fields), etag='"a"', last_modified=modified) is expected
    assert evaluate(method, fields_of(fields.items()), etag='"a"', last_modified=modified) is expected


def test_fields_of_indexes_lower_cased_names_and_joins_repeated_fields() -> None:
    assert fields_of([("Vary", "Accept"), ("ETag", '"a"'), ("vary", "Cookie")]) == {
        "vary": "Accept, Cookie",
        "etag": '"a"',
    }


def test_a_field_view_returning_a_non_string_counts_as_absent() -> None:
    class Odd(_UpperView):
        def get(self, name: str, default: object = None) -> object:  # type: ignore[override]
            return 42

    assert get_header(Odd({}), "If-None-Match") is None
