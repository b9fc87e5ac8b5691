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
    conditional_headers,
    decide,
    describe,
    freshen_headers,
    headers_to_store,
    invalidation_targets,
    is_storable,
    select_for_304,
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


@pytest.mark.parametrize("value", ["abc", "-3", "1.5", "", "7, 9"])
def test_invalid_age_is_ignored(value: str) -> None:
    assert freshness_of(200, [("Age", value), ("Date", date())], T0, T0).current_age(T0) == 0


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


def _select(stored: list[list[tuple[str, str]]], response: list[tuple[str, str]]) -> list[int]:
    candidates = [(Validators.of(headers), T0 + i) for i, headers in enumerate(stored)]
    return select_for_304(candidates, Validators.of(response))


def _tags(*etags: str) -> list[list[tuple[str, str]]]:
    return [[("ETag", tag)] for tag in etags]


def test_describe_reads_freshness_and_validators_in_one_reading() -> None:
    headers = [("Cache-Control", "max-age=60"), ("Age", "5"), ("ETag", '"a"'), ("Last-Modified", date(-60))]
    freshness, validators = describe(200, headers, T0, T0 + 1, heuristic=0.1)
    assert (freshness.lifetime, freshness.current_age(T0 + 1)) == (60, 6)
    assert validators == Validators.of(headers)
    assert str(validators.etag) == '"a"'


def test_304_with_a_strong_etag_selects_every_strong_match() -> None:
    assert _select(_tags('"a"', '"b"', '"a"', 'W/"a"'), [("ETag", '"a"')]) == [0, 2]


def test_304_with_a_weak_etag_selects_the_most_recent_weak_match() -> None:
    assert _select(_tags('W/"a"', '"a"', '"b"'), [("ETag", 'W/"a"')]) == [1]


def test_304_without_a_validator_selects_the_single_stored_response_without_one() -> None:
    # RFC 9111 §4.3.4: only if there is one stored response "and that stored response also lacks a
    # validator"; one that has a validator was not what the validator-less 304 confirmed.
    assert _select([[("Cache-Control", "max-age=0")]], [("Date", date())]) == [0]
    assert _select(_tags('"a"'), []) == []
    assert _select([[("Last-Modified", date(-60))]], []) == []
    assert _select([[], []], []) == []
    assert _select([], []) == []


def test_304_with_last_modified_only_matches_by_date() -> None:
    stored = [[("Last-Modified", date(-60))], [("Last-Modified", date(-30))]]
    assert _select(stored, [("Last-Modified", date(-60))]) == [0]
    assert _select(stored, [("Last-Modified", date(-10))]) == []


def test_304_for_a_body_no_longer_held_selects_nothing() -> None:
    assert _select(_tags('"b"'), [("ETag", '"a"')]) == []


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
    chosen = select_for_304(
        [(Validators.of(response), response_time), (Validators.of(other), request_time)], Validators.of(other)
    )
    assert set(chosen) <= {0, 1}
    freshen_headers(response, other)
    age_value(fresh.current_age(now))
    invalidation_targets("POST", status, "http://127.0.0.1:8000/x", response)
