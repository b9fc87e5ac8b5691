"""HTTP-date parsing and formatting (RFC 9110 §5.6.7), on top of stdlib ``email.utils``. Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

__all__ = ["format_http_date", "parse_http_date", "to_utc_seconds"]

_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_DAY_L = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MON = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = r"\d{2}:\d{2}:\d{2}"
# IMF-fixdate  = day-name "," SP date1 SP time-of-day SP GMT      ; date1 = day SP month SP year
# rfc850-date  = day-name-l "," SP date2 SP time-of-day SP GMT    ; date2 = day "-" month "-" 2DIGIT
# asctime-date = day-name SP date3 SP time-of-day SP year         ; date3 = month SP ( 2DIGIT / ( SP DIGIT ))
_HTTP_DATE = re.compile(
    rf"{_DAY}, \d{{2}} {_MON} \d{{4}} {_TIME} GMT"
    rf"|{_DAY_L}, \d{{2}}-{_MON}-\d{{2}} {_TIME} GMT"
    rf"|{_DAY} {_MON} (?:\d{{2}}| \d) {_TIME} \d{{4}}",
    re.ASCII,
)


def parse_http_date(value: str | None) -> datetime | None:
    """Return the aware UTC datetime of an HTTP-date, or None when it is not one (RFC 9110 §5.6.7).

    Only the three RFC forms are accepted, matched exactly (so ``…; length=12`` or a list is
    invalid); an impossible calendar date is invalid too. Never raises.
    """
    if value is None or len(value) > 64:
        return None
    value = value.strip(" \t")
    if _HTTP_DATE.fullmatch(value) is None:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # asctime carries no zone; RFC 9110 says it is UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_http_date(moment: datetime | float) -> str:
    """Format an aware datetime (or POSIX seconds) as an IMF-fixdate, the form senders MUST use."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        raise ValueError("naive datetime: HTTP-dates need an aware datetime (use tzinfo=UTC)")
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def to_utc_seconds(moment: datetime) -> int:
    """Whole POSIX seconds of an aware datetime: HTTP-dates compare at one-second resolution."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (tzinfo=UTC)")
    return int(moment.timestamp() // 1)
