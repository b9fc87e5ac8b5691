"""ETag values, list parsing (RFC 9110 §8.8.3, §13.1.1-2), comparison and generation."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etagkit import (
    ConditionalPolicy,
    ConfigurationError,
    ETag,
    EtagkitError,
    InvalidETagError,
    SerializationError,
    etag_from_version,
    generate_etag,
    parse_etags,
)
from etagkit.core import etag as core_etag
from etagkit.core.etag import etag_or_none

# --- the value object -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "weak", "text"),
    [
        ("abc", False, '"abc"'),
        ("abc", True, 'W/"abc"'),
        ("", False, '""'),
        ("a,b", False, '"a,b"'),
        ("W/x", False, '"W/x"'),
        ("e\\tag", False, '"e\\tag"'),
        ("caf\xe9", False, '"caf\xe9"'),  # obs-text %x80-FF
        ("!#~\x7e\x80\xff", True, 'W/"!#~\x7e\x80\xff"'),
    ],
)
def test_str_and_parse_are_inverse(tag: str, weak: bool, text: str) -> None:
    etag = ETag(tag, weak=weak)
    assert str(etag) == text
    assert ETag.parse(text) == etag
    assert ETag.parse(f" \t{text} ") == etag  # surrounding OWS


@pytest.mark.parametrize("tag", ['a"b', "a b", "tab\t", "\x00", "\x7f", "euro\u20ac", "nl\n", "\x20"])
def test_invalid_opaque_tag_refused_at_construction(tag: str) -> None:
    with pytest.raises(
        InvalidETagError, match=r"^not an opaque-tag \(RFC 9110 §8\.8\.3 etagc characters\): "
    ):
        ETag(tag)


def test_construction_checks_types() -> None:
    with pytest.raises(InvalidETagError, match=r"^not an opaque-tag .*: b'abc'$"):
        ETag(b"abc")  # type: ignore[arg-type]
    with pytest.raises(InvalidETagError, match=r"^weak must be a bool, not 1$"):
        ETag("abc", weak=1)  # type: ignore[arg-type]


def test_errors_are_value_errors_under_one_root() -> None:
    assert issubclass(InvalidETagError, ValueError)
    assert issubclass(InvalidETagError, EtagkitError)
    with pytest.raises(ValueError, match="entity-tag"):
        ETag.parse("abc")


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        'w/"abc"',
        '"abc',
        'abc"',
        '"a"b"',
        'W/ "a"',
        'W/"a',
        '"a" "b"',
        '"a", "b"',
        "*",
        "",
        " ",
        "W/",
        '"\x00"',
    ],
)
def test_parse_refuses_malformed(value: str) -> None:
    with pytest.raises(InvalidETagError, match=r"^not an entity-tag \(RFC 9110 §8\.8\.3\): "):
        ETag.parse(value)


def test_parse_refuses_non_strings() -> None:
    with pytest.raises(InvalidETagError, match=r"^not an entity-tag \(RFC 9110 §8\.8\.3\): None$"):
        ETag.parse(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"a"', ETag("a")),
        (' \tW/"a" ', ETag("a", weak=True)),
        (None, None),
        ("a", None),
        ('\xa0"a"', None),  # OWS is SP and HTAB only (§5.6.3): NBSP and NEL are not trimmed
        ('"a"\x85', None),
        ('w/"a"', None),
        ('"a", "b"', None),
        ("*", None),
        ("", None),
    ],
)
def test_etag_or_none_reads_one_entity_tag_or_gives_none(value: str | None, expected: ETag | None) -> None:
    assert etag_or_none(value) == expected


@given(st.text(max_size=20) | st.builds(lambda s: f'W/"{s}"', st.text(max_size=10)))
def test_etag_or_none_never_raises_and_agrees_with_parse(value: str) -> None:
    try:
        parsed: ETag | None = ETag.parse(value)
    except InvalidETagError:
        parsed = None
    assert etag_or_none(value) == parsed


def test_frozen_and_slotted() -> None:
    etag = ETag("a")
    with pytest.raises(AttributeError, match=r"^cannot assign to field 'tag'$"):
        etag.tag = "b"  # type: ignore[misc]
    assert not hasattr(etag, "__dict__")
    assert hash(etag) == hash(ETag("a"))


# RFC 9110 §8.8.3.2 comparison table, plus the strong/strong mismatch.
@pytest.mark.parametrize(
    ("a", "b", "strong", "weak"),
    [
        ('W/"1"', 'W/"1"', False, True),
        ('W/"1"', 'W/"2"', False, False),
        ('W/"1"', '"1"', False, True),
        ('"1"', '"1"', True, True),
        ('"1"', '"2"', False, False),
        ('"1"', 'W/"1"', False, True),
    ],
)
def test_comparison_table(a: str, b: str, strong: bool, weak: bool) -> None:
    x, y = ETag.parse(a), ETag.parse(b)
    assert x.strong_match(y) is strong
    assert y.strong_match(x) is strong
    assert x.weak_match(y) is weak
    assert y.weak_match(x) is weak


# --- lists ------------------------------------------------------------------------------------

S, W = ETag, lambda tag: ETag(tag, weak=True)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        (" \t", None),
        (", ,,", None),  # only empty members: no condition at all
        ("*", "*"),
        (" * ", "*"),
        ('"a"', (S("a"),)),
        ('W/"a"', (W("a"),)),
        ('"a", W/"b" ,"c"', (S("a"), W("b"), S("c"))),
        (', "a" ,,', (S("a"),)),  # empty elements MUST be accepted (§5.6.1.2)
        ('"a,b", "c"', (S("a,b"), S("c"))),  # comma inside quotes belongs to the tag
        ('W/"a,b"', (W("a,b"),)),
        ('*, "a"', (S("a"),)),  # '*' only as the whole value; inside a list it is an invalid member
        ('"a", *', (S("a"),)),
        ("**", ()),
        ('w/"a"', ()),  # W/ is case-sensitive
        ("a", ()),  # bare token: not an entity-tag
        ('a, "b"', (S("b"),)),
        ('"a" b, "c"', (S("c"),)),
        ('x"a, b", "c"', (S("c"),)),  # the malformed member keeps its quoted comma
        ('"a\\", "b"', (S("a\\"), S("b"))),  # no escapes in entity-tags: backslash is etagc
        ('"caf\xe9"', (S("caf\xe9"),)),
        ('"\u20ac", "a"', (S("a"),)),  # beyond latin-1 is not obs-text
        ('"a\x00", "b"', (S("b"),)),
        ('"a"\r\n, "b"', (S("b"),)),
        ('"unterminated, "b"', ()),
        ('""', (S(""),)),
        ("W/", ()),
    ],
)
def test_parse_etags_rfc_reading(header: str | None, expected: object) -> None:
    assert parse_etags(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('"a", "b"', (S("a"), S("b"))),
        ('"a", b', ()),
        ('*, "a"', ()),
        ('w/"a"', ()),
        ("*", "*"),
        (",", None),
    ],
)
def test_parse_etags_strict_field(header: str, expected: object) -> None:
    assert parse_etags(header, policy=ConditionalPolicy(strict_field=True)) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('w/"a"', (W("a"),)),
        ("a, b", (S("a"), S("b"))),
        ("W/a", (W("a"),)),
        ('"a", b"c', (S("a"),)),
        ('*, "a"', (S("*"), S("a"))),
        ("*", "*"),
    ],
)
def test_parse_etags_permissive(header: str, expected: object) -> None:
    assert parse_etags(header, policy=ConditionalPolicy(permissive=True)) == expected


def test_member_cap() -> None:
    header = ", ".join(f'"t{i}"' for i in range(1000))
    tags = parse_etags(header)
    assert isinstance(tags, tuple)
    assert len(tags) == 256
    assert tags[-1] == ETag("t255")
    small = parse_etags(header, policy=ConditionalPolicy(max_members=3))
    assert small == (S("t0"), S("t1"), S("t2"))


def test_length_cap_keeps_whole_members_only() -> None:
    policy = ConditionalPolicy(max_field_length=12)
    assert parse_etags('"ab", "cd", "efgh"', policy=policy) == (S("ab"), S("cd"))
    assert parse_etags('"abcdefghijklmnop"', policy=policy) == ()  # present, but nothing considered
    assert parse_etags('"abcdefghijklmnop", "x"', policy=policy) == ()
    assert parse_etags('"a", "b"', policy=policy) == (S("a"), S("b"))  # under the cap: untouched


def test_huge_header_is_bounded_and_still_present() -> None:
    assert parse_etags('"' + "a" * 1_000_000 + '"') == ()
    assert parse_etags("," * 1_000_000) == ()


# --- generation -------------------------------------------------------------------------------


def _expected_tag(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()[:16]).rstrip(b"=").decode()


def test_generate_etag_hashes_identity_bytes_with_sha256_by_default() -> None:
    body = b"Hello World"
    etag = generate_etag(body)
    assert etag == ETag(_expected_tag(body))
    assert len(etag.tag) == 22
    assert not etag.weak
    assert generate_etag(body, weak=True) == ETag(etag.tag, weak=True)


def test_bytes_like_and_str_give_the_same_tag() -> None:
    tag = generate_etag(b"caf\xc3\xa9")
    assert generate_etag(bytearray(b"caf\xc3\xa9")) == tag
    assert generate_etag(memoryview(b"caf\xc3\xa9")) == tag
    assert generate_etag("café") == tag  # str hashed as UTF-8
    assert generate_etag(b"cafe") != tag


def test_objects_go_through_canonical_json() -> None:
    a = generate_etag({"b": [1, 2], "a": "é"})
    assert a == generate_etag({"a": "é", "b": [1, 2]})  # key order does not matter
    assert a == generate_etag('{"a":"é","b":[1,2]}')  # sorted keys, fixed separators, no \\u escapes
    assert generate_etag([1, 2]) != generate_etag([2, 1])
    assert generate_etag(None) == generate_etag("null")


def test_unencodable_objects_raise_serialization_error() -> None:
    with pytest.raises(SerializationError, match=r"^cannot derive an ETag from dict: .*object"):
        generate_etag({"a": object()})
    with pytest.raises(SerializationError, match=r"^cannot derive an ETag from dict: .*'<'"):
        generate_etag({1: "a", "b": 2})  # keys of mixed types cannot be sorted


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "blake2b", "blake3", "xxh3"])
def test_every_algorithm_gives_a_compact_stable_tag(algorithm: str) -> None:
    etag = generate_etag(b"x" * 1000, algorithm=algorithm)  # type: ignore[arg-type]
    assert len(etag.tag) == 22
    assert etag == generate_etag(b"x" * 1000, algorithm=algorithm)  # type: ignore[arg-type]
    assert etag != generate_etag(b"x" * 999, algorithm=algorithm)  # type: ignore[arg-type]


def test_algorithms_differ() -> None:
    tags = {generate_etag(b"data", algorithm=a).tag for a in ("sha256", "sha1", "blake2b", "blake3", "xxh3")}
    assert len(tags) == 5


@pytest.mark.parametrize("algorithm", ["md5", "SHA256", "", None, ["sha256"]])
def test_unknown_algorithm_is_a_configuration_error(algorithm: object) -> None:
    choices = re.escape("['blake2b', 'blake3', 'sha1', 'sha256', 'xxh3']")
    with pytest.raises(
        ConfigurationError,
        match=rf"^unknown algorithm {re.escape(repr(algorithm))}; choose one of {choices}$",
    ):
        generate_etag(b"x", algorithm=algorithm)  # type: ignore[arg-type]


@pytest.mark.parametrize(("algorithm", "module"), [("blake3", "blake3"), ("xxh3", "xxhash")])
def test_missing_optional_hash_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, algorithm: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail, as if not installed
    # the hash is imported on first use and kept: start from before that use
    monkeypatch.setitem(core_etag._DIGESTS, algorithm, core_etag._LOADERS[algorithm])
    message = f"^algorithm='{algorithm}' needs the {module} package: pip install 'etagkit\\[fast\\]'$"
    with pytest.raises(ImportError, match=message):
        generate_etag(b"x", algorithm=algorithm)  # type: ignore[arg-type]
    # the default needs nothing optional: still the sha256 known answer
    assert generate_etag(b"x") == ETag(_expected_tag(b"x")) == ETag("LXEWQrcmsEQBYnyp-6wy9Q")


# --- version tags -----------------------------------------------------------------------------


def test_version_tag_is_deterministic_and_type_aware() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    tag = etag_from_version(when, 7)
    assert tag == etag_from_version(when, 7)
    assert not tag.weak
    assert etag_from_version(when, 7, weak=True) == ETag(tag.tag, weak=True)
    assert tag != etag_from_version(when, 8)
    assert tag != etag_from_version(when + timedelta(microseconds=1), 7)
    assert etag_from_version(1) != etag_from_version("1")
    assert etag_from_version(1) != etag_from_version(True)
    assert etag_from_version("ab") != etag_from_version(b"ab")
    assert etag_from_version("a", "b") != etag_from_version("ab")
    assert etag_from_version(date(2024, 1, 2)) != etag_from_version("2024-01-02")


def test_version_tag_same_instant_any_zone() -> None:
    utc = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    paris = utc.astimezone(timezone(timedelta(hours=1)))
    assert etag_from_version(utc) == etag_from_version(paris)
    assert etag_from_version(utc) != etag_from_version(utc.replace(tzinfo=None))  # naive is its own kind
    naive = datetime(2024, 1, 1, 12, 0)
    assert etag_from_version(naive) == etag_from_version(datetime(2024, 1, 1, 12, 0))


def test_version_tag_is_stable_across_processes() -> None:
    code = (
        "from datetime import datetime, timezone; import etagkit; "
        "print(etagkit.etag_from_version(datetime(2024, 5, 6, tzinfo=timezone.utc), 42, 'row', b'x'))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {str(etag_from_version(datetime(2024, 5, 6, tzinfo=UTC), 42, "row", b"x"))}


def test_version_tag_refuses_nothing_and_unknown_types() -> None:
    with pytest.raises(ConfigurationError, match=r"^etag_from_version needs at least one version part$"):
        etag_from_version()
    kinds = r"^version parts are int, str, bytes, date or datetime, not "
    with pytest.raises(ConfigurationError, match=kinds + "float$"):
        etag_from_version(1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=kinds + "NoneType$"):
        etag_from_version(None)  # type: ignore[arg-type]


# --- known answers: a tag must not change across releases ------------------------------------------
# A silent change would invalidate every stored and client-held tag after an upgrade (§8.8.1: a
# validator changes when the representation does, and only then).

KNOWN_CONTENT_TAGS = {
    "sha256": "pZGm1Av0IEBKARczz7exkA",
    "sha1": "Ck1VqNd45QIvq3AZd8XYQA",
    "blake2b": "DMhKtXxHbSOFuJnKdConkA",
    "blake3": "Qfg5QRHrcToiFlxGyQq48A",
    "xxh3": "QDODoVyZvu6aw68hJqACkg",
}


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


@pytest.mark.parametrize(("algorithm", "tag"), sorted(KNOWN_CONTENT_TAGS.items()))
def test_known_answer_for_every_algorithm(algorithm: str, tag: str) -> None:
    assert generate_etag(b"Hello World", algorithm=algorithm) == ETag(tag)  # type: ignore[arg-type]
    assert generate_etag("Hello World", algorithm=algorithm, weak=True) == ETag(tag, weak=True)  # type: ignore[arg-type]


def test_known_answers_match_the_documented_digests() -> None:
    """The constants above are what each digest gives, truncated to 128 bits, unpadded base64url."""
    import blake3
    import xxhash

    data = b"Hello World"
    assert {
        "sha256": _b64(hashlib.sha256(data).digest()),
        "sha1": _b64(hashlib.sha1(data).digest()),
        "blake2b": _b64(hashlib.blake2b(data, digest_size=16).digest()),  # a 16-byte digest, not a cut
        "blake3": _b64(blake3.blake3(data).digest(16)),
        "xxh3": _b64(xxhash.xxh3_128_digest(data)),
    } == KNOWN_CONTENT_TAGS


def test_known_answer_for_str_and_json_bodies() -> None:
    assert generate_etag("caf\xe9") == ETag("hQ99xDkQ_4kPiHnA7Sb-aQ")  # UTF-8, not latin-1
    assert generate_etag({"b": [1, 2], "a": "\xe9"}) == ETag("nPsfk4qH8rjzuMxCnHoJEQ")
    assert generate_etag({"b": [1, 2], "a": "\xe9"}) == ETag(
        _b64(hashlib.sha256('{"a":"é","b":[1,2]}'.encode()).digest())
    )


AWARE = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
NAIVE = datetime(2024, 5, 6, 7, 8, 9, 123456)

# (parts, the documented encoding of each part, the tag): int, str, bytes, bool, aware and naive
# datetimes, dates, and several parts at once
KNOWN_VERSION_TAGS: list[tuple[tuple[object, ...], list[list[str]], str]] = [
    ((7,), [["int", "7"]], "u4bA7vIHzGVi_sdgaTxx-w"),
    ((0,), [["int", "0"]], "sqTwPHasS64uov1cOHC11w"),
    ((-1,), [["int", "-1"]], "QMcNgAJ2SLuiqK0jqP6L2g"),
    (("7",), [["str", "7"]], "eUC_KEuozwNA2-8EMSARWw"),
    ((b"7",), [["bytes", "37"]], "cfbvaclvO-SuBgTGKnjvEw"),
    ((True,), [["bool", "True"]], "tL9c5ttxJfqoFsf6UHVRtg"),
    ((False,), [["bool", "False"]], "D-23ztfAbruk24ga-c3qeg"),
    ((AWARE,), [["utc", "2024-05-06T07:08:09.123456"]], "2cBEqLXX_U2TXG3ybSJgPg"),
    ((NAIVE,), [["naive", "2024-05-06T07:08:09.123456"]], "nMcN6lgDXwaFeDNwXmWdKQ"),
    ((date(2024, 5, 6),), [["date", "2024-05-06"]], "EuXnRTUaG--U0RRBohWTuw"),
    (
        (datetime(2024, 5, 6, tzinfo=UTC), 42, "row", b"x"),
        [["utc", "2024-05-06T00:00:00"], ["int", "42"], ["str", "row"], ["bytes", "78"]],
        "M7mlEe_2FpFYpgbmwC41Tg",
    ),
]


@pytest.mark.parametrize(("parts", "encoded", "tag"), KNOWN_VERSION_TAGS)
def test_known_answer_for_every_version_kind(
    parts: tuple[object, ...], encoded: list[list[str]], tag: str
) -> None:
    assert etag_from_version(*parts) == ETag(tag)  # type: ignore[arg-type]
    assert etag_from_version(*parts, weak=True) == ETag(tag, weak=True)  # type: ignore[arg-type]
    canonical = json.dumps(["etagkit.version", encoded], separators=(",", ":"), ensure_ascii=False)
    assert tag == _b64(hashlib.sha256(canonical.encode()).digest())


def test_bool_versions_differ_from_each_other_and_from_ints() -> None:
    assert etag_from_version(7, True) != etag_from_version(7, False)
    assert etag_from_version(True) != etag_from_version(1)
    assert etag_from_version(False) != etag_from_version(0)


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata"])
def test_version_tags_do_not_depend_on_the_process_time_zone(zone: str) -> None:
    """§8.8.1: a validator changes when the representation does, not when the server's TZ does."""
    from support import local_time_zone

    with local_time_zone(zone):
        for parts, _, tag in KNOWN_VERSION_TAGS:
            assert etag_from_version(*parts).tag == tag  # type: ignore[arg-type]


def test_version_tags_across_a_dst_fold() -> None:
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2024, 10, 27, 2, 30, tzinfo=berlin)  # 00:30 UTC (CEST)
    second = datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=berlin)  # 01:30 UTC (CET), same wall time
    assert etag_from_version(first) != etag_from_version(second)
    assert etag_from_version(first) == etag_from_version(datetime(2024, 10, 27, 0, 30, tzinfo=UTC))
    assert etag_from_version(second) == etag_from_version(datetime(2024, 10, 27, 1, 30, tzinfo=UTC))


def test_a_tzinfo_without_an_offset_counts_as_naive() -> None:
    class Floating(tzinfo):
        def utcoffset(self, dt: datetime | None) -> timedelta | None:
            return None

    floating = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=Floating())
    assert etag_from_version(floating) == etag_from_version(NAIVE)


# --- caps and whitespace the RFC pins ---------------------------------------------------------------


def test_star_with_a_tail_past_the_cap_is_not_star() -> None:
    """Only a whole value of ``*`` is ``*`` (§13.1.2); a value cut at the cap is not known whole."""
    assert parse_etags("*" + " " * 16384) == ()
    assert parse_etags("*" + " " * 16383) == "*"  # exactly at the cap: whole, trailing OWS trimmed
    assert parse_etags("*" + "\t" * 8, policy=ConditionalPolicy(max_field_length=8)) == ()


def test_a_member_cut_at_the_cap_never_matches() -> None:
    policy = ConditionalPolicy(max_field_length=8)
    assert parse_etags('"a", "b"x', policy=policy) == (S("a"),)  # the cut member ('"b"x') is dropped
    assert parse_etags('"a", "b"', policy=policy) == (S("a"), S("b"))  # exactly at the cap: kept
    assert parse_etags('"abcdefgh"', policy=policy) == ()  # 10 > 8: its only member is cut
    assert parse_etags('"abcdef"', policy=policy) == (S("abcdef"),)  # 8: whole


@pytest.mark.parametrize("junk", ["\x85", "\xa0", "\x0b", "\x0c", "\r", "\n"])
def test_only_sp_and_htab_are_ows_around_star_and_tags(junk: str) -> None:
    """§5.6.3: OWS is SP / HTAB; any other character makes ``*`` or a member invalid."""
    assert parse_etags(f"*{junk}") == ()
    assert parse_etags(f"{junk}*") == ()
    assert parse_etags(f'{junk}"a"') == ()
    assert parse_etags(f' \t"a"{junk}, "b" ') == (S("b"),)


def test_memoized_parses_hold_short_values_only() -> None:
    """The memo is bounded in bytes: values over 256 characters are parsed, never remembered."""
    from etagkit.core.etag import _parse_default, _parse_short

    strict = ConditionalPolicy(strict_field=True)
    _parse_default.cache_clear()
    _parse_short.cache_clear()
    at_cap = '"' + "a" * 254 + '"'
    over = '"' + "a" * 255 + '"'
    assert parse_etags(over) == (S("a" * 255),)
    assert parse_etags(over, policy=strict) == (S("a" * 255),)
    assert _parse_default.cache_info().currsize == _parse_short.cache_info().currsize == 0
    assert parse_etags(at_cap) == (S("a" * 254),)
    assert parse_etags(at_cap, policy=strict) == (S("a" * 254),)
    assert _parse_default.cache_info().currsize == _parse_short.cache_info().currsize == 1


def test_version_etag_turns_what_an_etag_callable_returned_into_a_tag() -> None:
    from etagkit.core.etag import version_etag

    tag = ETag("abc")
    assert version_etag(None) is None
    assert version_etag(tag) is tag
    assert version_etag('W/"abc"') == ETag("abc", weak=True)  # a header string is parsed
    assert version_etag("v7") == etag_from_version("v7")  # any other string is a version
    assert version_etag(7) == etag_from_version(7)
    assert version_etag((7, "x")) == etag_from_version(7, "x")
    assert version_etag((7, "x")) != version_etag(7)
