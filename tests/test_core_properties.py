"""Hypothesis properties of the pure core: round trips, comparison laws, total functions, bounded work."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import etagkit
from etagkit import (
    ConditionalPolicy,
    ETag,
    Outcome,
    evaluate,
    not_modified_headers,
    parse_cache_control,
    parse_etags,
    parse_http_date,
    range_applies,
    requires_precondition,
)
from etagkit.core.etag import _parse, _parse_default, _parse_short
from etagkit.core.policy import DEFAULT_POLICY

ETAGC = [chr(0x21), *map(chr, range(0x23, 0x7F)), *map(chr, range(0x80, 0x100))]
etags = st.builds(ETag, st.text(alphabet=ETAGC, max_size=20), st.booleans())
# small alphabet so that equal tags (and so matches) are common
close_etags = st.builds(ETag, st.text(alphabet="ab", max_size=2), st.booleans())

CONDITIONAL = ["If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range", "Range"]
WIRE = [
    '"a"',
    'W/"a"',
    "*",
    ",",
    " ",
    "w/",
    '"',
    "Sun, 06 Nov 1994 08:49:37 GMT",
    "; length=1",
    "\x00",
    "\u20ac",
]
header_text = st.one_of(
    st.text(max_size=200),  # anything: non-ASCII, control characters, lone surrogates
    st.lists(st.sampled_from(WIRE), max_size=60).map("".join),  # near-miss grammar
    st.lists(etags.map(str), max_size=400).map(", ".join),  # long valid lists (beyond the member cap)
)
headers = st.one_of(
    st.dictionaries(st.sampled_from([*CONDITIONAL, "Cache-Control"]), header_text, max_size=6),
    st.lists(st.tuples(st.sampled_from(CONDITIONAL) | st.text(max_size=10), header_text), max_size=8),
)
moments = st.none() | st.datetimes(
    timezones=st.just(UTC), min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)
)
policies = st.builds(
    ConditionalPolicy,
    strict_field=st.booleans(),
    permissive=st.booleans(),
    request_no_cache_forces_200=st.booleans(),
    no_etag_means_no_representation=st.booleans(),
    accept_ie_length_suffix=st.booleans(),
    max_members=st.integers(1, 300),
    max_field_length=st.integers(1, 20_000),
)
methods = st.sampled_from(
    ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"]
) | st.text(max_size=8)


@given(etags)
def test_parse_inverts_str(tag: ETag) -> None:
    assert ETag.parse(str(tag)) == tag


@given(close_etags, close_etags)
def test_strong_match_implies_weak_match_and_both_are_symmetric(a: ETag, b: ETag) -> None:
    if a.strong_match(b):
        assert a.weak_match(b)
    assert a.strong_match(b) == b.strong_match(a)
    assert a.weak_match(b) == b.weak_match(a)
    assert a.weak_match(a)
    assert a.strong_match(a) == (not a.weak)


@given(st.lists(etags, min_size=1, max_size=256), st.sampled_from([",", ", ", " ,\t", ",,"]))
def test_list_of_tags_round_trips(tags: list[ETag], separator: str) -> None:
    assert parse_etags(separator.join(map(str, tags))) == tuple(tags)


@given(header_text, policies)
def test_parse_etags_is_total(value: str, policy: ConditionalPolicy) -> None:
    parsed = parse_etags(value, policy=policy)
    assert parsed is None or parsed == "*" or all(isinstance(t, ETag) for t in parsed)
    if isinstance(parsed, tuple):
        assert len(parsed) <= policy.max_members


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    method=methods,
    request=headers,
    etag=st.none() | etags,
    last_modified=moments,
    exists=st.booleans(),
    policy=policies,
)
def test_evaluate_never_raises_on_request_input(
    *,
    method: str,
    request: Any,
    etag: ETag | None,
    last_modified: datetime | None,
    exists: bool,
    policy: ConditionalPolicy,
) -> None:
    outcome = evaluate(method, request, etag=etag, last_modified=last_modified, exists=exists, policy=policy)
    assert isinstance(outcome, Outcome)
    assert outcome.status in (None, 304, 412)
    if outcome is Outcome.NOT_MODIFIED:
        assert method.upper() in ("GET", "HEAD")
    assert isinstance(range_applies(request, etag=etag, last_modified=last_modified, method=method), bool)
    assert isinstance(requires_precondition(method, request), bool)


@given(st.lists(st.tuples(st.text(max_size=20), st.text(max_size=20)), max_size=20), st.booleans())
def test_not_modified_headers_is_a_filter(pairs: list[tuple[str, str]], set_cookie: bool) -> None:
    kept = not_modified_headers(pairs, set_cookie=set_cookie)
    remaining = iter(pairs)
    assert all(any(p == k for p in remaining) for k in kept)  # an ordered sub-sequence
    assert not any(name.lower() in ("content-type", "content-length") for name, _ in kept)


@given(header_text)
def test_other_parsers_are_total(value: str) -> None:
    assert isinstance(parse_cache_control(value), dict)
    assert parse_http_date(value) is None or parse_http_date(value) == parse_http_date(value.strip(" \t"))


# --- bounded, linear work (counted, never timed) --------------------------------------------------

PACKAGE = str(Path(etagkit.__file__).resolve().parent)


def work(fn: Callable[[], object]) -> int:
    """Calls made (Python and C) while ``fn`` runs inside etagkit's own frames: a work count, not a time."""
    count = 0

    def profiler(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        if event in ("call", "c_call") and frame.f_code.co_filename.startswith(PACKAGE):
            count += 1

    _parse_default.cache_clear()  # count a fresh parse, not a memo hit of an earlier example
    _parse_short.cache_clear()
    previous = sys.getprofile()
    sys.setprofile(profiler)
    try:
        fn()
    finally:
        sys.setprofile(previous)
    return count


@settings(deadline=None, max_examples=50)
@given(st.sampled_from(['"a"', 'W/"b"', "junk", 'w/"c"', "*", '"x,y"', "", *WIRE]), st.integers(5, 100))
def test_parse_work_is_linear_in_members(member: str, n: int) -> None:
    def parse(k: int) -> Callable[[], object]:
        return lambda: parse_etags(", ".join([member] * k))

    small, double = work(parse(n)), work(parse(2 * n))
    assert double <= 2 * small + 10


def test_parse_work_is_capped() -> None:
    member = '"abcdef"'
    capped = work(lambda: parse_etags(", ".join([member] * 300)))
    assert work(lambda: parse_etags(", ".join([member] * 100_000))) <= capped + 5
    junk = work(lambda: parse_etags("x" * 1000))
    assert work(lambda: parse_etags("x" * 1_000_000)) <= junk + 5


def test_evaluate_work_is_capped() -> None:
    def run(members: int) -> Callable[[], object]:
        header = ", ".join(['"zz"'] * members)
        return lambda: evaluate("GET", {"If-None-Match": header, "If-Match": header}, etag='"a"')

    assert work(run(100_000)) <= work(run(300)) + 10


@given(st.text(max_size=300), st.sampled_from([DEFAULT_POLICY, ConditionalPolicy(strict_field=True)]))
def test_a_memoized_parse_equals_a_fresh_one(header: str, policy: ConditionalPolicy) -> None:
    first = parse_etags(header, policy=policy)
    assert parse_etags(header, policy=policy) == first == _parse(header, policy)
