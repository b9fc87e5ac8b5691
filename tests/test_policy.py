"""Cache-Control (RFC 9111 §5.2) policy and parsing, Vary merging, and the precondition policy."""

from __future__ import annotations

import pytest

from etagkit import (
    CacheControl,
    ConditionalPolicy,
    ConfigurationError,
    RequestCacheControl,
    merge_vary,
    parse_cache_control,
)
from etagkit.core.policy import vary_names

# --- parse_cache_control --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {}),
        ("", {}),
        ("no-cache", {"no-cache": None}),
        ("Max-Age=60, PUBLIC", {"max-age": "60", "public": None}),
        ("max-age=60, max-age=0", {"max-age": "60"}),  # first occurrence wins
        (' private="Set-Cookie, X-A" , no-store', {"private": "Set-Cookie, X-A", "no-store": None}),
        ('x="a\\"b\\\\c"', {"x": 'a"b\\c'}),  # quoted-pair unescaped
        ("max-age = 5", {"max-age": "5"}),  # OWS around '=' tolerated
        (",,, no-cache ,", {"no-cache": None}),
        ("junk junk, max-age=1", {"max-age": "1"}),
        ('a="unterminated, b', {}),
        ('a="x,y", b', {"a": "x,y", "b": None}),
        ("max-age=\u0661", {}),  # non-ASCII: not a token
        ("max-age=1 2", {}),
        ("=1, no-cache", {"no-cache": None}),
    ],
)
def test_parse_cache_control(value: str | None, expected: dict[str, str | None]) -> None:
    assert parse_cache_control(value) == expected


def test_parse_cache_control_caps_members() -> None:
    parsed = parse_cache_control(", ".join(f"d{i}" for i in range(1000)))
    assert len(parsed) == 64
    assert "d63" in parsed
    assert "d64" not in parsed


# --- CacheControl (responses) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "rendered"),
    [
        (CacheControl(), "no-cache"),
        (CacheControl(private=True), "private, no-cache"),
        (CacheControl(max_age=0), "max-age=0"),
        (CacheControl(max_age=60, public=True), "public, max-age=60"),
        (CacheControl(s_maxage=30), "s-maxage=30"),
        (CacheControl(no_store=True), "no-store"),
        (CacheControl(no_cache=True, max_age=5), "no-cache, max-age=5"),
        (
            CacheControl(
                max_age=60,
                s_maxage=120,
                public=True,
                must_revalidate=True,
                proxy_revalidate=True,
                no_transform=True,
                immutable=True,
                stale_while_revalidate=30,
                stale_if_error=600,
            ),
            "public, max-age=60, s-maxage=120, stale-while-revalidate=30, stale-if-error=600, "
            "must-revalidate, proxy-revalidate, no-transform, immutable",
        ),
    ],
)
def test_cache_control_renders_and_round_trips(policy: CacheControl, rendered: str) -> None:
    assert str(policy) == rendered
    reparsed = CacheControl.parse(rendered)
    assert str(reparsed) == rendered


@pytest.mark.parametrize(
    "kwargs",
    [
        {"public": True, "private": True},
        {"no_store": True, "max_age": 5},
        {"no_store": True, "s_maxage": 5},
        {"no_store": True, "public": True},
        {"no_store": True, "immutable": True, "max_age": 5},
        {"immutable": True},
        {"immutable": True, "max_age": 0},
        {"max_age": -1},
        {"s_maxage": 1.5},
        {"stale_while_revalidate": True},
        {"stale_if_error": "60"},
    ],
)
def test_cache_control_refuses_contradictions(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        CacheControl(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, CacheControl()),
        ("max-age=60, public", CacheControl(max_age=60, public=True)),
        ("public, private", CacheControl(private=True)),  # contradiction: private wins
        ("no-store, max-age=60, public, immutable", CacheControl(no_store=True)),
        ("max-age=x, s-maxage=-1", CacheControl()),
        ("immutable", CacheControl()),  # needs a lifetime
        ("immutable, max-age=0", CacheControl(max_age=0)),
        ("immutable, max-age=9", CacheControl(max_age=9, immutable=True)),
        ("max-age=99999999999999999999", CacheControl(max_age=2**31)),
        (
            "stale-while-revalidate=1, stale-if-error=2",
            CacheControl(stale_while_revalidate=1, stale_if_error=2),
        ),
        ("no-cache, must-revalidate", CacheControl(no_cache=True, must_revalidate=True)),
        ("proxy-revalidate, no-transform", CacheControl(proxy_revalidate=True, no_transform=True)),
    ],
)
def test_cache_control_parse(value: str | None, expected: CacheControl) -> None:
    assert CacheControl.parse(value) == expected


def test_huge_delta_seconds_saturate_without_error() -> None:
    assert CacheControl.parse("max-age=" + "9" * 10_000).max_age == 2**31
    assert CacheControl.parse("max-age=" + "0" * 10_000 + "7").max_age == 7
    assert CacheControl.parse("max-age=4294967296").max_age == 2**31


# --- RequestCacheControl --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, RequestCacheControl()),
        ("no-cache", RequestCacheControl(no_cache=True)),
        ("NO-STORE, no-transform", RequestCacheControl(no_store=True, no_transform=True)),
        ("max-age=0", RequestCacheControl(max_age=0)),
        ("max-stale", RequestCacheControl(max_stale=2**31)),
        ("max-stale=10", RequestCacheControl(max_stale=10)),
        ("max-stale=ten", RequestCacheControl()),
        ("min-fresh=5, only-if-cached", RequestCacheControl(min_fresh=5, only_if_cached=True)),
        ('no-cache="x"', RequestCacheControl(no_cache=True)),
    ],
)
def test_request_cache_control(value: str | None, expected: RequestCacheControl) -> None:
    assert RequestCacheControl.parse(value) == expected


# --- Vary -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((), ""),
        ((None,), ""),
        (("Accept-Encoding",), "Accept-Encoding"),
        (("Accept-Encoding, Accept", "accept-encoding", None), "Accept-Encoding, Accept"),
        ((["Cookie", " Origin "], "Accept"), "Cookie, Origin, Accept"),
        (("Accept", "*"), "*"),
        ((" , ,Accept,",), "Accept"),
        (((),), ""),
    ],
)
def test_merge_vary(values: tuple[object, ...], expected: str) -> None:
    assert merge_vary(*values) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ("", ()),
        ("Accept-Language, accept, , Accept", ("accept", "accept-language")),
        ("Accept, *", None),
        (" * ", None),
    ],
)
def test_vary_names_are_a_sorted_lower_cased_set_or_none_for_star(
    value: str | None, expected: tuple[str, ...] | None
) -> None:
    assert vary_names(value) == expected


# --- ConditionalPolicy -----------------------------------------------------------------------------


def test_conditional_policy_default_is_rfc_baseline_and_frozen() -> None:
    policy = ConditionalPolicy()
    assert not any(
        (
            policy.strict_field,
            policy.permissive,
            policy.request_no_cache_forces_200,
            policy.no_etag_means_no_representation,
            policy.accept_ie_length_suffix,
        )
    )
    with pytest.raises(AttributeError):
        policy.strict_field = True  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs", [{"max_members": 0}, {"max_members": True}, {"max_field_length": -1}, {"max_field_length": 1.0}]
)
def test_conditional_policy_refuses_bad_caps(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        ConditionalPolicy(**kwargs)  # type: ignore[arg-type]
