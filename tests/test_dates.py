"""HTTP-dates (RFC 9110 §5.6.7): the three accepted forms, everything else invalid; formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

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
    with pytest.raises(ConfigurationError):
        format_http_date(datetime(1994, 11, 6))
    with pytest.raises(ConfigurationError):
        to_utc_seconds(datetime(1994, 11, 6))
    with pytest.raises(ConfigurationError):
        to_utc_seconds("Sun, 06 Nov 1994 08:49:37 GMT")  # type: ignore[arg-type]


def test_to_utc_seconds_truncates_to_whole_seconds() -> None:
    assert to_utc_seconds(SUNDAY) == 784111777
    assert to_utc_seconds(SUNDAY + timedelta(microseconds=999_999)) == 784111777
    assert to_utc_seconds(datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)) == -1


@given(st.text(max_size=64))
def test_a_memoized_date_equals_a_fresh_parse(value: str) -> None:
    from etagkit.core.dates import _parse

    first = parse_http_date(value)
    assert parse_http_date(value) == first == _parse.__wrapped__(value)
