"""Header access and list splitting over the shapes callers hold: mappings and (name, value) lists.

Pure helpers shared by the core: case-insensitive lookup (RFC 9110 §5.1: field names are
case-insensitive) and a linear-time, quote-aware splitter for comma-separated lists (§5.6.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

__all__ = [
    "TOKEN",
    "FieldView",
    "Fields",
    "HeaderSource",
    "fields_of",
    "get_header",
    "is_token",
    "split_list",
    "valid_field",
]

HeaderSource = Mapping[str, str] | Iterable[tuple[str, str]]

OWS = " \t"
# token = 1*tchar ; tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_"
#                           / "`" / "|" / "~" / DIGIT / ALPHA                     (RFC 9110 §5.6.2)
TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN = re.compile(TOKEN)
# field-value = *field-content ; field-content = field-vchar [ 1*( SP / HTAB / field-vchar ) field-vchar ]
# field-vchar = VCHAR / obs-text   (RFC 9110 §5.5): no CTL but HTAB, so never a CR, LF or NUL; and
# nothing above obs-text (0xFF), which no header can carry on the wire (WSGI: latin-1 strings).
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")

# One list member: text up to the next comma that is not inside a DQUOTE pair. An unclosed quote runs
# to the end. Every quantifier is possessive in effect (the branches start on distinct characters and
# nothing follows the pattern), so a match never backtracks: work is linear in the member's length.
_MEMBER = re.compile(r'([^,"]*(?:"[^"]*"?[^,"]*)*)(?:,|\Z)')
# Same, but inside quotes a backslash escapes the next character (quoted-string, RFC 9110 §5.6.4).
_MEMBER_ESCAPED = re.compile(r'([^,"]*(?:"(?:[^"\\]|\\.)*"?[^,"]*)*)(?:,|\Z)', re.DOTALL)


class Fields(dict[str, str]):
    """Field values under lower-cased field names: :func:`get_header` reads them with one lookup.

    Adapters build one per request from what they already hold, so the hot path never scans.
    """

    __slots__ = ()


def fields_of(headers: Iterable[tuple[str, str]]) -> Fields:
    """Index a header list in one pass: values under lower-cased names, repeated fields joined by
    ``", "`` (RFC 9110 §5.3), so that each later lookup is one dict read."""
    fields = Fields()
    for name, value in headers:
        key = name.lower()
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return fields


class FieldView(Mapping[str, str]):
    """A mapping that itself looks fields up case-insensitively (``get(name)``), e.g. over a WSGI
    environ: :func:`get_header` trusts its ``get`` instead of scanning every item."""

    __slots__ = ()


def get_header(headers: HeaderSource, name: str) -> str | None:
    """The field value of ``name`` (case-insensitive), repeated fields joined by ``", "`` (§5.3)."""
    lname = name.lower()
    if isinstance(headers, Fields):
        return headers.get(lname)
    if isinstance(headers, FieldView):
        value = headers.get(name)
        return value if isinstance(value, str) else None
    items = headers.items() if isinstance(headers, Mapping) else headers
    found = [v for k, v in items if isinstance(k, str) and isinstance(v, str) and k.lower() == lname]
    if not found:
        return None
    return ", ".join(found)


def is_token(value: object) -> bool:
    """Whether ``value`` is a ``token`` (RFC 9110 §5.6.2): what a field name must be (§5.1)."""
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def valid_field(name: object, value: object) -> bool:
    """Whether a (name, value) pair may be sent as a header field: a token name and a value with no
    control character but HTAB (RFC 9110 §5.1, §5.5). Stored data is checked with it before it
    reaches a server, which would refuse (or be split by) a CR or LF."""
    return is_token(name) and isinstance(value, str) and _FIELD_VALUE.fullmatch(value) is not None


def split_list(value: str, *, limit: int, escapes: bool = False) -> Iterator[str]:
    """Yield the non-empty members of a list field value, OWS-stripped, at most ``limit`` of them.

    Commas inside a quoted section belong to the member; empty members are skipped, as recipients
    MUST accept them (RFC 9110 §5.6.1.2). With ``escapes``, ``\\`` quotes the next character inside a
    quoted-string (Cache-Control arguments); entity-tags have no escapes (§8.8.3).
    """
    count = 0
    for match in (_MEMBER_ESCAPED if escapes else _MEMBER).finditer(value):
        text = match.group(1).strip(OWS)
        if text:
            if count >= limit:
                return
            count += 1
            yield text
