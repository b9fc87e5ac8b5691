"""HTTP-dates (RFC 9110 §5.6.7): the three accepted forms, everything else invalid; formatting."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etagkit import ConfigurationError, format_http_date, parse_http_date
from etagkit.core.dates import to_utc_seconds

SUNDAY = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", SUNDAY),  # IMF-fixdate
        ("Sunday, 06-Nov-94 08:49:37 GMT", SUNDAY),  # rfc850-date
        ("Sun Nov  6 08:49:37 1994", SUNDAY),  # asctime-date
        ("Sun Nov 06 08:49:37 1994", SUNDAY),
        ("  Sun, 06 Nov 1994 08:49:37 GMT\t", SUNDAY),
        ("Thu, 01 Jan 1970 00:00:00 GMT", datetime(1970, 1, 1, tzinfo=UTC)),
        ("Fri, 31 Dec 9999 23:59:59 GMT", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("Sat, 29 Feb 2020 00:00:00 GMT", datetime(2020, 2, 29, tzinfo=UTC)),
        ("Wed, 31 Dec 2008 23:59:60 GMT", datetime(2008, 12, 31, 23, 59, 59, tzinfo=UTC)),  # leap second
        ("Thursday, 01-Jan-70 00:00:00 GMT", datetime(1970, 1, 1, tzinfo=UTC)),
        ("Monday, 01-Jan-24 00:00:00 GMT", datetime(2024, 1, 1, tzinfo=UTC)),
        ("Mon, 01 Jan 2024 00:00:00 GMT", datetime(2024, 1, 1, tzinfo=UTC)),  # day-name not cross-checked
        ("Tue, 01 Jan 2024 00:00:00 GMT", datetime(2024, 1, 1, tzinfo=UTC)),
    ],
)
def test_valid_forms(value: str, expected: datetime) -> None:
    parsed = parse_http_date(value)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "foo",
        "Sun, 06 Nov 1994 08:49:37 GMT; length=13774",
        "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
        "sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 gmt",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun,  06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 29 Feb 2019 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 0000 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 06-Nov-94 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 1994 GMT",
        "1994-11-06T08:49:37Z",
        "784111777",
        "Sun, \uff10\uff16 Nov 1994 08:49:37 GMT",  # full-width digits
        "Sun, 06 Nov 1994 08:49:37 GMT\x00",
        "x" * 10_000,
    ],
)
def test_invalid_values_are_none(value: str | None) -> None:
    assert parse_http_date(value) is None


def test_format_http_date() -> None:
    assert format_http_date(SUNDAY) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert format_http_date(SUNDAY + timedelta(microseconds=999_999)) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert (
        format_http_date(SUNDAY.astimezone(timezone(timedelta(hours=9)))) == "Sun, 06 Nov 1994 08:49:37 GMT"
    )
    assert format_http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert format_http_date(784111777.9) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert parse_http_date(format_http_date(SUNDAY)) == SUNDAY


def test_naive_datetimes_are_a_configuration_error() -> None:
    naive = r"^naive datetime: HTTP-dates need an aware datetime \(use tzinfo=UTC\)$"
    with pytest.raises(ConfigurationError, match=naive):
        format_http_date(datetime(1994, 11, 6))
    aware = r"^expected an aware datetime \(tzinfo=UTC\), not "
    with pytest.raises(ConfigurationError, match=aware + re.escape("datetime.datetime(1994, 11, 6, 0, 0)")):
        to_utc_seconds(datetime(1994, 11, 6))
    with pytest.raises(ConfigurationError, match=aware + "'Sun, 06 Nov"):
        to_utc_seconds("Sun, 06 Nov 1994 08:49:37 GMT")  # type: ignore[arg-type]


class _Floating(tzinfo):
    """A tzinfo that knows no offset: the datetime is naive in all but name (Python's own rule)."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None


def test_a_tzinfo_without_an_offset_is_naive() -> None:
    with pytest.raises(ConfigurationError, match=r"^expected an aware datetime"):
        to_utc_seconds(datetime(1994, 11, 6, tzinfo=_Floating()))


def test_to_utc_seconds_truncates_to_whole_seconds() -> None:
    assert to_utc_seconds(SUNDAY) == 784111777
    assert to_utc_seconds(SUNDAY + timedelta(microseconds=999_999)) == 784111777
    assert to_utc_seconds(datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)) == -1


@given(st.text(max_size=64))
def test_a_memoized_date_equals_a_fresh_parse(value: str) -> None:
    from etagkit.core.dates import _parse

    first = parse_http_date(value)
    assert parse_http_date(value) == first == _parse.__wrapped__(value.strip(" \t"))


# --- whitespace, caps and non-strings -----------------------------------------------------------------


@pytest.mark.parametrize("ows", [" ", "\t", " \t" * 50, " " * 10_000])
def test_surrounding_ows_is_not_part_of_the_value_however_long(ows: str) -> None:
    """§5.5: a field value excludes leading and trailing whitespace, so no cap may count it."""
    assert parse_http_date(f"{ows}Sun, 06 Nov 1994 08:49:37 GMT{ows}") == SUNDAY
    assert parse_http_date(f"{ows}Sunday, 06-Nov-94 08:49:37 GMT") == SUNDAY
    assert parse_http_date(f"Sun Nov  6 08:49:37 1994{ows}") == SUNDAY


@pytest.mark.parametrize("junk", ["\xa0", "\x85", "\n", "\r", "\x0b", "\x0c", "X", "x"])
def test_other_characters_around_a_date_make_it_invalid(junk: str) -> None:
    """OWS is SP and HTAB only (§5.6.3)."""
    assert parse_http_date(f"{junk}Sun, 06 Nov 1994 08:49:37 GMT") is None
    assert parse_http_date(f"Sun, 06 Nov 1994 08:49:37 GMT{junk}") is None
    assert parse_http_date(f"Sun Nov  6 08:49:37 1994{junk}") is None


def test_the_memo_holds_values_of_64_characters_at_most() -> None:
    """Dates are memoized; what a stranger can put in the memo is bounded in bytes."""
    from etagkit.core.dates import _parse

    _parse.cache_clear()
    assert parse_http_date("x" * 65) is None
    assert parse_http_date(" " + "x" * 65 + " ") is None
    assert _parse.cache_info().currsize == 0
    assert parse_http_date(" " + "x" * 64 + " ") is None
    assert _parse.cache_info().currsize == 1


@pytest.mark.parametrize("value", [5, b"Sun, 06 Nov 1994 08:49:37 GMT", 1.5, ["x"]])
def test_non_strings_are_not_dates(value: object) -> None:
    assert parse_http_date(value) is None  # type: ignore[arg-type]


# --- local time zone: formatting and seconds never go through it ---------------------------------------


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata"])
def test_formatting_ignores_the_process_time_zone(zone: str) -> None:
    from support import local_time_zone

    with local_time_zone(zone):
        assert format_http_date(SUNDAY) == "Sun, 06 Nov 1994 08:49:37 GMT"
        assert format_http_date(784111777.5) == "Sun, 06 Nov 1994 08:49:37 GMT"
        # the ends of datetime's range: local time there would leave it (year 0 / 10000)
        assert format_http_date(253402300799) == "Fri, 31 Dec 9999 23:59:59 GMT"
        assert format_http_date(-62135596800) == "Mon, 01 Jan 0001 00:00:00 GMT"
        berlin_summer = datetime(2024, 7, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
        assert format_http_date(berlin_summer) == "Mon, 01 Jul 2024 12:00:00 GMT"
        assert to_utc_seconds(SUNDAY) == 784111777
        assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == SUNDAY
