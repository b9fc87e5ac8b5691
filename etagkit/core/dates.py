"""HTTP-date parsing and formatting (RFC 9110 §5.6.7); formatting by stdlib ``email.utils``. Pure."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime

from .._errors import ConfigurationError

__all__ = ["format_http_date", "parse_http_date", "to_utc_seconds"]

_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_DAY_L = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MON = rf"(?P<month>{'|'.join(_MONTHS)})"
# time-of-day = hour ":" minute ":" second   ; 00:00:00 - 23:59:60 (leap second)
_TIME = r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})"
_FORMS = tuple(
    re.compile(form, re.ASCII)
    for form in (
        # IMF-fixdate  = day-name "," SP day SP month SP year SP time-of-day SP GMT
        rf"{_DAY}, (?P<day>\d{{2}}) {_MON} (?P<year>\d{{4}}) {_TIME} GMT",
        # rfc850-date  = day-name-l "," SP day "-" month "-" 2DIGIT SP time-of-day SP GMT
        rf"{_DAY_L}, (?P<day>\d{{2}})-{_MON}-(?P<year>\d{{2}}) {_TIME} GMT",
        # asctime-date = day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP year
        rf"{_DAY} {_MON} (?P<day>\d{{2}}| \d) {_TIME} (?P<year>\d{{4}})",
    )
)


def parse_http_date(value: str | None) -> datetime | None:
    """Return the aware UTC datetime of an HTTP-date, or None when it is not one (RFC 9110 §5.6.7).

    Only the three RFC forms are accepted, matched exactly and case-sensitively (so ``…; length=12``
    or a list is invalid); an impossible calendar date is invalid too; a leap second reads as :59.
    A two-digit rfc850 year means 20YY below 70 and 19YY from 70 (a fixed pivot: the core never
    reads the clock, which the RFC's "50 years in the future" rule would need). Surrounding SP and
    HTAB (OWS) are not part of the value (§5.5), however long; any other character makes it invalid.
    Never raises.
    """
    if not isinstance(value, str):
        return None
    value = value.strip(" \t")  # §5.5: surrounding whitespace is not part of a field value
    if len(value) > 64:  # the longest valid form has 33 characters; the cap bounds the memo in bytes
        return None
    return _parse(value)  # dates repeat (every client echoes the same Last-Modified): memoized


def _parse_uncached(value: str) -> datetime | None:
    for form in _FORMS:
        match = form.fullmatch(value)
        if match is not None:
            break
    else:
        return None
    year = int(match["year"])
    if len(match["year"]) == 2:
        year += 2000 if year < 70 else 1900
    try:
        return datetime(
            year,
            _MONTHS.index(match["month"]) + 1,
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            59 if match["second"] == "60" else int(match["second"]),
            tzinfo=UTC,
        )
    except ValueError:  # day 32, hour 25, year 0 ...
        return None


# wrapped, not decorated: mutmut does not mutate decorated functions (see [tool.mutmut] in pyproject)
_parse = functools.lru_cache(maxsize=1024)(_parse_uncached)


def format_http_date(moment: datetime | float) -> str:
    """Format an aware datetime (or POSIX seconds) as an IMF-fixdate, the form senders MUST use."""
    from email.utils import format_datetime  # imports socket: kept out of ``import etagkit``

    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        raise ConfigurationError("naive datetime: HTTP-dates need an aware datetime (use tzinfo=UTC)")
    return format_datetime(moment.astimezone(UTC), usegmt=True)  # whole seconds: fraction dropped


def to_utc_seconds(moment: datetime) -> int:
    """Whole POSIX seconds of an aware datetime: HTTP-dates compare at one-second resolution.

    Raises ConfigurationError (a ValueError) for a naive datetime or a non-datetime: the caller's
    mistake, since it gave the value.
    """
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigurationError(f"expected an aware datetime (tzinfo=UTC), not {moment!r}")
    return int(moment.timestamp() // 1)
