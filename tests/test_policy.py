"""Cache-Control (RFC 9111 §5.2) policy and parsing, Vary merging, and the precondition policy."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from etagkit import (
    CacheControl,
    ConditionalPolicy,
    ConfigurationError,
    RequestCacheControl,
    merge_vary,
    parse_cache_control,
)
from etagkit.core.policy import delta_seconds, vary_names

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
        # RFC 9110 §5.6.4: a quoted-pair inside a quoted-string, even before a comma
        ('no-cache="a\\", b", max-age=5', {"no-cache": 'a", b', "max-age": "5"}),
        ('private="x\\\\", max-age=5', {"private": "x\\", "max-age": "5"}),
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


_BOTH = r"^a response cannot be both public and private$"
_NO_STORE = r"^no-store contradicts max-age / s-maxage / immutable / public$"
_IMMUTABLE = r"^immutable needs a max_age > 0 to mean anything$"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"public": True, "private": True}, _BOTH),
        ({"no_store": True, "max_age": 5}, _NO_STORE),
        ({"no_store": True, "s_maxage": 5}, _NO_STORE),
        ({"no_store": True, "public": True}, _NO_STORE),
        ({"no_store": True, "immutable": True, "max_age": 5}, _NO_STORE),
        ({"immutable": True}, _IMMUTABLE),
        ({"immutable": True, "max_age": 0}, _IMMUTABLE),
        ({"max_age": -1}, r"^max_age must be a non-negative int, not -1$"),
        ({"s_maxage": 1.5}, r"^s_maxage must be a non-negative int, not 1\.5$"),
        ({"stale_while_revalidate": True}, r"^stale_while_revalidate must be a non-negative int, not True$"),
        ({"stale_if_error": "60"}, r"^stale_if_error must be a non-negative int, not '60'$"),
    ],
)
def test_cache_control_refuses_contradictions(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
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
        ("no-store, s-maxage=60", CacheControl(no_store=True)),  # no-store wins; never raises
        ("no-store, max-age=60", CacheControl(no_store=True)),
        ("s-maxage=60, no-store, immutable", CacheControl(no_store=True)),
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
        ((None, "Accept", None, "Cookie"), "Accept, Cookie"),  # None is skipped, not an end
        (("X-Request-Id, Accept", "XX-Y"), "X-Request-Id, Accept, XX-Y"),
        (("\tAccept \t,\t X-A",), "Accept, X-A"),  # OWS is SP and HTAB (§5.6.3) ...
        (("Accept\xa0, \x85Cookie",), "Accept\xa0, \x85Cookie"),  # ... nothing else is trimmed
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
        ("X-Request-Id, x-request-id", ("x-request-id",)),
        ("\tAccept \t", ("accept",)),
        ("Accept\xa0", ("accept\xa0",)),  # only SP and HTAB are OWS
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
    with pytest.raises(AttributeError, match=r"^cannot assign to field 'strict_field'$"):
        policy.strict_field = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_members": 0}, r"^max_members must be a positive int, not 0$"),
        ({"max_members": True}, r"^max_members must be a positive int, not True$"),
        ({"max_field_length": -1}, r"^max_field_length must be a positive int, not -1$"),
        ({"max_field_length": 1.0}, r"^max_field_length must be a positive int, not 1\.0$"),
    ],
)
def test_conditional_policy_refuses_bad_caps(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ConditionalPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0),
        ("007", 7),
        ("1000000000", 1_000_000_000),  # 10 digits: still read exactly
        ("2147483647", 2**31 - 1),
        ("2147483648", 2**31),
        ("9999999999", 2**31),
        ("10000000000", 2**31),  # 11 digits: saturated without int()
        ("-1", None),
        ("+1", None),
        ("1.5", None),
        (" 1", None),
        ("\u0661", None),  # a non-ASCII digit
    ],
)
def test_delta_seconds(value: str | None, expected: int | None) -> None:
    """RFC 9111 §1.2.2: 1*DIGIT; a recipient saturates values over 2**31 at 2**31."""
    assert delta_seconds(value) == expected


@example(["\u212a", "k"])  # KELVIN SIGN lower-cases to "k"
@example(["Accept", "accept", "ACCEPT"])
@given(st.lists(st.text(alphabet="aAkK\u212a-, \t", max_size=8), max_size=4))
def test_merged_vary_names_are_distinct_by_the_key_rule(values: list[str]) -> None:
    """merge_vary drops a name that vary_names (which keys stored validators) counts as a repeat."""
    merged = merge_vary(*values)
    names = vary_names(merged)
    if names is not None:
        assert len(names) == len([n for n in merged.split(", ") if n])
        assert names == vary_names(", ".join(values))
