"""The client's pure RFC 9111 core: freshness and age arithmetic, storage, validation, freshening."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etagkit.core.dates import format_http_date
from etagkit.core.freshness import (
    Freshness,
    RequestDirectives,
    Use,
    Validators,
    age_value,
    answers_condition,
    conditional_headers,
    decide,
    describe,
    first_age,
    freshen_headers,
    freshens,
    headers_to_store,
    invalidation_targets,
    is_storable,
    usable_on_error,
    vary_selection,
)
from etagkit.core.headers import get_header
from etagkit.core.policy import vary_names

T0 = 1_700_000_000.0  # a whole second, so HTTP-dates round-trip exactly
NO_REQUEST = RequestDirectives()


def date(offset: float = 0) -> str:
    return format_http_date(T0 + offset)


def freshness_of(
    status: int,
    headers: list[tuple[str, str]],
    request_time: float,
    response_time: float,
    *,
    heuristic: float | None = None,
) -> Freshness:
    return describe(status, headers, request_time, response_time, heuristic=heuristic)[0]


# ---- §4.2.1 freshness lifetime ------------------------------------------------------------------


def test_max_age_is_the_lifetime_and_beats_expires() -> None:
    headers = [("Cache-Control", "max-age=60"), ("Expires", date(3600)), ("Date", date())]
    assert freshness_of(200, headers, T0, T0).lifetime == 60


def test_s_maxage_is_ignored_by_a_private_cache() -> None:
    assert freshness_of(200, [("Cache-Control", "s-maxage=60")], T0, T0).lifetime == 0


def test_expires_minus_date() -> None:
    assert freshness_of(200, [("Expires", date(90)), ("Date", date())], T0, T0).lifetime == 90


def test_expires_without_date_counts_from_the_response_time() -> None:
    assert freshness_of(200, [("Expires", date(90))], T0, T0 + 10).lifetime == 80


@pytest.mark.parametrize("value", ["0", "-1", "yesterday", "", date(90) + "; x"])
def test_invalid_expires_means_already_expired(value: str) -> None:
    # RFC 9111 §5.3: an invalid date, especially "0", is a time in the past.
    fresh = freshness_of(200, [("Expires", value), ("Date", date())], T0, T0)
    assert fresh.lifetime == 0
    assert decide(fresh, NO_REQUEST, T0) is Use.REVALIDATE


def test_no_heuristic_freshness_unless_asked() -> None:
    headers = [("Last-Modified", date(-1000)), ("Date", date())]
    assert freshness_of(200, headers, T0, T0).lifetime == 0
    assert freshness_of(200, headers, T0, T0, heuristic=0.1).lifetime == pytest.approx(100)
    assert freshness_of(500, headers, T0, T0, heuristic=0.1).lifetime == 0  # not heuristically cacheable


def test_heuristic_lifetime_is_capped_at_a_day() -> None:
    headers = [("Last-Modified", date(-(10**9))), ("Date", date())]
    assert freshness_of(200, headers, T0, T0, heuristic=0.5).lifetime == 86_400


# ---- §4.2.3 age ---------------------------------------------------------------------------------


def test_age_header_counts() -> None:
    fresh = freshness_of(200, [("Cache-Control", "max-age=60"), ("Age", "50"), ("Date", date())], T0, T0)
    assert fresh.current_age(T0) == 50
    assert decide(fresh, NO_REQUEST, T0 + 9) is Use.FRESH
    assert decide(fresh, NO_REQUEST, T0 + 10) is Use.REVALIDATE


def test_response_delay_is_added_to_the_age_value() -> None:
    # corrected_age_value = age_value + (response_time - request_time)
    fresh = freshness_of(200, [("Age", "5"), ("Date", date(3))], T0, T0 + 3)
    assert fresh.current_age(T0 + 3) == 8


def test_apparent_age_from_an_old_date() -> None:
    # apparent_age = response_time - date_value, when larger than the corrected Age
    fresh = freshness_of(200, [("Age", "5"), ("Date", date(-30))], T0, T0)
    assert fresh.current_age(T0 + 10) == 40


def test_a_date_in_the_future_gives_no_negative_age() -> None:
    fresh = freshness_of(200, [("Date", date(500))], T0, T0)
    assert fresh.current_age(T0) == 0


@pytest.mark.parametrize("value", ["abc", "-3", "1.5", "", ", 7", "x, 7"])
def test_invalid_age_is_ignored(value: str) -> None:
    assert freshness_of(200, [("Age", value), ("Date", date())], T0, T0).current_age(T0) == 0


@pytest.mark.parametrize(
    "ages", [[("Age", "7200, 0")], [("Age", "7200,0")], [("Age", "7200"), ("Age", "0")]], ids=str
)
def test_a_list_valued_age_counts_by_its_first_member(ages: list[tuple[str, str]]) -> None:
    # Issue 14 item 1 (RFC 9111 §5.1; cache-tests age-parse-suffix, age-parse-suffix-twoline): before,
    # the list was invalid, so ignored, and a response 2 hours old was served as fresh.
    fresh = freshness_of(200, [("Cache-Control", "max-age=3600"), ("Date", date()), *ages], T0, T0)
    assert fresh.current_age(T0) == 7200
    assert decide(fresh, NO_REQUEST, T0) is Use.REVALIDATE
    assert first_age(None) is None


def test_huge_age_saturates_instead_of_overflowing() -> None:
    fresh = freshness_of(200, [("Age", "9" * 40), ("Cache-Control", "max-age=60")], T0, T0)
    assert fresh.current_age(T0) == 2**31
    assert decide(fresh, NO_REQUEST, T0) is Use.REVALIDATE


# ---- decisions ----------------------------------------------------------------------------------


def _fresh(cc: str, age: str = "0") -> Freshness:
    return freshness_of(200, [("Cache-Control", cc), ("Date", date()), ("Age", age)], T0, T0)


def test_no_cache_always_revalidates() -> None:
    assert decide(_fresh("max-age=60, no-cache"), NO_REQUEST, T0) is Use.REVALIDATE
    assert decide(_fresh("max-age=60"), RequestDirectives(no_cache=True), T0) is Use.REVALIDATE


def test_request_max_age_and_min_fresh_narrow_freshness() -> None:
    fresh = _fresh("max-age=60", age="20")
    assert decide(fresh, NO_REQUEST, T0) is Use.FRESH
    assert decide(fresh, RequestDirectives(max_age=10), T0) is Use.REVALIDATE
    assert decide(fresh, RequestDirectives(min_fresh=30), T0) is Use.FRESH
    assert decide(fresh, RequestDirectives(min_fresh=40), T0) is Use.REVALIDATE


def test_stale_while_revalidate_window() -> None:
    fresh = _fresh("max-age=10, stale-while-revalidate=30")
    assert decide(fresh, NO_REQUEST, T0 + 5) is Use.FRESH
    assert decide(fresh, NO_REQUEST, T0 + 20) is Use.STALE_WHILE_REVALIDATE
    assert decide(fresh, NO_REQUEST, T0 + 40) is Use.REVALIDATE


def test_request_max_stale_accepts_a_stale_response_unless_must_revalidate() -> None:
    # RFC 9111 §5.2.1.2: a bare max-stale accepts any staleness, max-stale=N up to N seconds.
    fresh = freshness_of(200, [("Cache-Control", "max-age=10")], T0, T0)
    bounded = RequestDirectives.parse([("Cache-Control", "max-stale=5")])
    assert (bounded.max_stale, RequestDirectives.parse([("Cache-Control", "max-stale")]).max_stale) == (
        5,
        float("inf"),
    )
    assert decide(fresh, bounded, T0 + 15) is Use.STALE
    assert decide(fresh, bounded, T0 + 16) is Use.REVALIDATE
    assert decide(fresh, RequestDirectives(max_stale=float("inf")), T0 + 10**6) is Use.STALE
    assert RequestDirectives.parse([("Cache-Control", "max-stale=soon")]).max_stale is None
    strict = freshness_of(200, [("Cache-Control", "max-age=10, must-revalidate")], T0, T0)
    assert decide(strict, bounded, T0 + 12) is Use.REVALIDATE
    no_cache = freshness_of(200, [("Cache-Control", "no-cache")], T0, T0)
    assert decide(no_cache, bounded, T0) is Use.REVALIDATE


def test_must_revalidate_forbids_serving_stale() -> None:
    fresh = _fresh("max-age=10, stale-while-revalidate=30, stale-if-error=30, must-revalidate")
    assert decide(fresh, NO_REQUEST, T0 + 20) is Use.REVALIDATE
    assert not usable_on_error(fresh, NO_REQUEST, T0 + 20)


def test_stale_if_error_window_from_response_or_request() -> None:
    fresh = _fresh("max-age=10, stale-if-error=30")
    assert usable_on_error(fresh, NO_REQUEST, T0 + 39)
    assert not usable_on_error(fresh, NO_REQUEST, T0 + 41)
    assert usable_on_error(fresh, RequestDirectives(stale_if_error=100), T0 + 41)
    assert not usable_on_error(_fresh("max-age=10"), NO_REQUEST, T0 + 11)


def test_request_directives_parse() -> None:
    parsed = RequestDirectives.parse([("Cache-Control", "max-age=5, min-fresh=2, no-store, only-if-cached")])
    assert parsed == RequestDirectives(max_age=5, min_fresh=2, no_store=True, only_if_cached=True)
    assert RequestDirectives.parse([("Pragma", "no-cache")]).no_cache
    # Pragma is ignored when Cache-Control is present (RFC 9111 §5.4)
    assert not RequestDirectives.parse([("Pragma", "no-cache"), ("Cache-Control", "max-age=5")]).no_cache


# ---- §3 storing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "headers", "expected"),
    [
        ("GET", 200, [("ETag", '"a"')], True),  # heuristically cacheable status: stored, lifetime 0
        ("GET", 200, [("Cache-Control", "private, max-age=60")], True),  # a private cache may
        ("GET", 200, [("Cache-Control", "no-store")], False),
        ("GET", 200, [("Cache-Control", "max-age=60, no-store")], False),
        ("GET", 200, [("Cache-Control", "max-age=60"), ("Vary", "Accept, *")], False),
        ("GET", 206, [("Cache-Control", "max-age=60")], False),
        ("GET", 304, [("Cache-Control", "max-age=60")], False),
        ("HEAD", 200, [("Cache-Control", "max-age=60")], False),
        ("POST", 200, [("Cache-Control", "max-age=60")], False),
        ("GET", 418, [], False),  # not heuristically cacheable, no explicit freshness
        ("GET", 418, [("Expires", "0")], True),
        # issue 14 item 3: a 5xx with an explicit lifetime is stored (RFC 9111 §3), not without one
        ("GET", 503, [("Cache-Control", "max-age=30")], True),
        ("GET", 500, [("Expires", date(30)), ("Date", date())], True),
        ("GET", 503, [("Cache-Control", "private")], False),
        ("GET", 502, [], False),
        ("GET", 501, [], True),  # heuristically cacheable (RFC 9110 §15.1)
    ],
)
def test_is_storable(method: str, status: int, headers: list[tuple[str, str]], expected: bool) -> None:
    assert is_storable(method, status, headers, NO_REQUEST) is expected


def test_request_no_store_forbids_storing() -> None:
    assert not is_storable("GET", 200, [("Cache-Control", "max-age=60")], RequestDirectives(no_store=True))


def test_set_cookie_and_connection_fields_are_not_stored() -> None:
    headers = [
        ("Set-Cookie", "a=1"),
        ("Connection", "keep-alive, X-Hop"),
        ("X-Hop", "1"),
        ("Transfer-Encoding", "chunked"),
        ("ETag", '"a"'),
        ("set-cookie", "b=2"),
    ]
    assert headers_to_store(headers) == (("ETag", '"a"'),)


# ---- §4.1 Vary ----------------------------------------------------------------------------------


def test_vary_selection() -> None:
    names = ("accept", "accept-language")
    one = vary_selection(names, [("Accept-Language", "en, fr"), ("Accept", "text/html")])
    same = vary_selection(names, [("accept", "text/html"), ("ACCEPT-LANGUAGE", "en,fr")])
    other = vary_selection(names, [("Accept", "text/html")])
    assert one == same
    assert one != other
    assert dict(other)["accept-language"] is None


# ---- §4.3 validation ----------------------------------------------------------------------------


def test_conditional_headers_from_the_stored_validators() -> None:
    stored = Validators.of([("ETag", ' W/"v1" '), ("Last-Modified", date(-60) + " ")])
    assert conditional_headers(stored) == (("If-None-Match", 'W/"v1"'), ("If-Modified-Since", date(-60)))
    assert Validators.of([("ETag", "v1"), ("Last-Modified", "soon")]) == Validators()
    assert conditional_headers(Validators()) == ()


def test_describe_reads_freshness_and_validators_in_one_reading() -> None:
    headers = [("Cache-Control", "max-age=60"), ("Age", "5"), ("ETag", '"a"'), ("Last-Modified", date(-60))]
    freshness, validators = describe(200, headers, T0, T0 + 1, heuristic=0.1)
    assert (freshness.lifetime, freshness.current_age(T0 + 1)) == (60, 6)
    assert validators == Validators.of(headers)
    assert str(validators.etag) == '"a"'


def _freshens(stored: list[tuple[str, str]], response: list[tuple[str, str]]) -> bool:
    return freshens(Validators.of(stored), Validators.of(response))


@pytest.mark.parametrize(
    ("stored", "response", "expected"),
    [
        ([("ETag", '"a"')], [("ETag", '"a"')], True),
        ([("ETag", '"a"')], [("ETag", '"b"')], False),  # about another response: ask again
        ([("ETag", 'W/"a"')], [("ETag", '"a"')], True),  # weak on one side: weak comparison
        ([("ETag", '"a"')], [("ETag", 'W/"a"')], True),
        ([("Last-Modified", date(-60))], [("ETag", '"a"')], False),
        ([("Last-Modified", date(-60))], [("Last-Modified", date(-60))], True),
        ([("Last-Modified", date(-60))], [("Last-Modified", date(-10))], False),
        # issue 14 item 2: a 304 without validators is about the response the condition came from
        ([("ETag", '"a"')], [("Date", date())], True),
        ([("Last-Modified", date(-60))], [], True),
        ([("ETag", '"a"')], [("ETag", "not-a-tag")], True),  # an invalid ETag is no validator
    ],
)
def test_a_304_freshens_the_response_its_condition_came_from(
    stored: list[tuple[str, str]], response: list[tuple[str, str]], expected: bool
) -> None:
    assert _freshens(stored, response) is expected


@pytest.mark.parametrize(
    ("request_headers", "expected"),
    [
        ([("If-None-Match", '"a"')], True),
        ([("If-None-Match", 'W/"a"')], True),  # weak comparison (RFC 9110 §13.1.2)
        ([("If-None-Match", '"x", "a"')], True),
        ([("If-None-Match", '"x"')], False),
        ([("If-None-Match", "*")], True),
        ([("If-None-Match", "garbage")], False),
        ([("If-Modified-Since", date(-60))], True),  # Last-Modified <= the date: not modified
        ([("If-Modified-Since", date(-61))], False),
        ([("If-Modified-Since", "yesterday")], False),
        ([("If-None-Match", '"x"'), ("If-Modified-Since", date())], False),  # INM wins (§13.2.2)
    ],
)
def test_answers_condition(request_headers: list[tuple[str, str]], expected: bool) -> None:
    stored = Validators.of([("ETag", '"a"'), ("Last-Modified", date(-60))])
    assert answers_condition(stored, request_headers) is expected
    assert answers_condition(Validators(), [("If-Modified-Since", date())]) is False


def test_freshen_replaces_metadata_but_keeps_what_describes_the_body() -> None:
    stored = [
        ("Content-Type", "application/json"),
        ("Content-Length", "10"),
        ("ETag", '"a"'),
        ("Cache-Control", "max-age=0"),
        ("X-Old", "1"),
    ]
    got = dict(
        freshen_headers(
            stored,
            [
                ("Cache-Control", "max-age=60"),
                ("ETag", '"a"'),
                ("Content-Length", "0"),
                ("Content-Type", "text/plain"),
                ("Set-Cookie", "s=1"),
            ],
        )
    )
    assert got == {
        "Content-Type": "application/json",
        "Content-Length": "10",
        "ETag": '"a"',
        "Cache-Control": "max-age=60",
        "X-Old": "1",
    }


def test_age_value_is_whole_seconds_and_saturates() -> None:
    assert age_value(12.7) == "12"
    assert age_value(1e20) == str(2**31)


# ---- §4.4 invalidation --------------------------------------------------------------------------


def test_invalidation_targets() -> None:
    target = "http://127.0.0.1:8000/books"
    headers = [("Location", "/books/7"), ("Content-Location", "http://other.example/books/7")]
    assert invalidation_targets("POST", 201, target, headers) == (target, "http://127.0.0.1:8000/books/7")
    assert invalidation_targets("DELETE", 204, target, []) == (target,)
    assert invalidation_targets("PUT", 500, target, []) == ()  # errors do not invalidate
    assert invalidation_targets("GET", 200, target, headers) == ()
    assert invalidation_targets("OPTIONS", 200, target, headers) == ()
    assert invalidation_targets("PURGE", 200, target, []) == (target,)  # unknown methods are unsafe
    assert invalidation_targets("post", 303, target, []) == (target,)
    assert invalidation_targets("PATCH", 302, target, [("Location", "http://[::1")]) == (target,)


# ---- strangers' input never raises --------------------------------------------------------------

_names = st.sampled_from(
    ["Cache-Control", "Age", "Date", "Expires", "ETag", "Last-Modified", "Vary", "Connection", "Set-Cookie",
     "Location", "Content-Location", "Pragma", "X-Other"]
)  # fmt: skip
_headers = st.lists(st.tuples(_names, st.text(max_size=60)), max_size=8)


_times = st.tuples(*[st.floats(min_value=-1e10, max_value=1e10)] * 3)


@settings(max_examples=300, deadline=None)
@given(
    status=st.integers(min_value=0, max_value=999),
    messages=st.tuples(_headers, _headers, _headers),
    times=_times,
    heuristic=st.none() | st.floats(min_value=0.01, max_value=1),
)
def test_the_core_never_raises_on_arbitrary_header_text(
    status: int,
    messages: tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]],
    times: tuple[float, float, float],
    heuristic: float | None,
) -> None:
    response, other, request = messages
    request_time, response_time, now = times
    directives = RequestDirectives.parse(request)
    fresh, validators = describe(status, response, request_time, response_time, heuristic=heuristic)
    assert validators == Validators.of(response)
    assert fresh.lifetime >= 0
    assert fresh.current_age(now) >= 0
    assert decide(fresh, directives, now) in set(Use)
    usable_on_error(fresh, directives, now)
    is_storable("GET", status, response, directives)
    names = vary_names(get_header(response, "vary"))
    if names is not None:
        vary_selection(names, request)
    conditional_headers(validators)
    freshens(Validators.of(response), Validators.of(other))
    answers_condition(Validators.of(response), request)
    first_age(get_header(response, "age"))
    freshen_headers(response, other)
    age_value(fresh.current_age(now))
    invalidation_targets("POST", status, "http://127.0.0.1:8000/x", response)
