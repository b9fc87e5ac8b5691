"""The common revalidation, answered without the general precondition machinery (issue 15).

Most conditional requests are a GET/HEAD whose only precondition is If-None-Match holding the tag
the client was sent. RFC 9110 §13.2.2 then decides by If-None-Match alone (If-Modified-Since is
ignored beside it), and a match is a 304 (§13.1.2, weak comparison). These functions answer exactly
that case with the answer the general path builds (the same :func:`~etagkit.core.reply._not_modified`)
and return None for anything else, which the exchange then evaluates in full. Pure.
"""

from __future__ import annotations

from .etag import HashAlgorithm, generate_etag
from .headers import Fields
from .records import StoredValidator
from .reply import _not_modified
from .steps import Answer, Count, Settings

__all__ = ["hashed_304", "only_if_none_match", "stored_304", "stored_route"]


def stored_route(settings: Settings, *, has_store: bool, has_tags: bool) -> bool:
    """Whether validators of a route may be stored and answered from (see :class:`Settings`):
    ``stored=True``, or by default a route that declares tags or may name them in its response."""
    stored = settings.stored
    if not has_store or stored is False:
        return False
    return stored is True or has_tags or settings.tag_header is not None


def only_if_none_match(fields: Fields) -> bool:
    """If-None-Match without If-Match / If-Unmodified-Since: §13.2.2 then decides by step 3 alone
    (If-Modified-Since is ignored when If-None-Match is present)."""
    return "if-none-match" in fields and "if-match" not in fields and "if-unmodified-since" not in fields


# record id -> (record, its tag as sent, weak form, the 304 answer); bounded like every memo
_FAST: dict[int, tuple[StoredValidator, str, str, Answer]] = {}
_FAST_ENTRIES = 4096


def stored_304(record: StoredValidator, if_none_match: str) -> Answer | None:
    """The stored record's 304 when If-None-Match is exactly its tag (or the tag's weak form: weak
    comparison, §13.1.2), built once per record by the same code as the general path; None
    otherwise (any other value goes through :func:`~etagkit.core.preconditions.evaluate`)."""
    held = _FAST.get(id(record))
    if held is None or held[0] is not record:
        if record.etag is None:
            return None
        text = str(record.etag)
        weak = text if record.etag.weak else "W/" + text
        reply = _not_modified(record.headers, record.etag, record.last_modified)
        held = (record, text, weak, Answer(reply, Count(304, record.length, True)))
        if len(_FAST) >= _FAST_ENTRIES:
            _FAST.clear()
        _FAST[id(record)] = held
    return held[3] if if_none_match == held[1] or if_none_match == held[2] else None


def hashed_304(
    body: bytes,
    if_none_match: str,
    headers: tuple[tuple[str, str], ...],
    weak: bool,
    algorithm: HashAlgorithm,
) -> Answer | None:
    """The 304 of an identity ``body`` (a 200 with no validator of its own) when If-None-Match is
    exactly its generated tag or that tag's weak form; None otherwise. The response's Set-Cookie
    stays on the 304, as the general path keeps it (the app set it for this client)."""
    tag = generate_etag(body, weak=weak, algorithm=algorithm)
    text = str(tag)
    if if_none_match != text and if_none_match != ("W/" + text if not weak else text):
        return None
    return Answer(_not_modified(headers, tag, None, set_cookie=True), Count(304, len(body)))
