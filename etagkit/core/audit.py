"""The decisions of ``etagkit check``: which probes to send a URL and what its answers mean. No I/O.

:func:`audit` drives the probes through an injected ``send`` (the command line passes an HTTP
client; tests may pass canned answers) and returns one :class:`Check` per rule, each citing the
RFC 9110 / 9111 section it comes from. Answers come from strangers: nothing here raises on odd
header text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .dates import parse_http_date
from .etag import ETag, etag_or_none
from .headers import get_header
from .policy import delta_seconds, parse_cache_control
from .preconditions import not_modified_headers

__all__ = ["Answer", "Check", "Probe", "Verdict", "audit", "exit_code"]

Headers = tuple[tuple[str, str], ...]

# Tags the auditor invents: they match nothing a server would send.
NO_SUCH_TAG = '"etagkit-check-no-such-tag"'
STALE_TAG = '"etagkit-check-stale-tag"'
# Revalidation answers with these are a signal a cache would store the 304 as the body's metadata.
_REPRESENTATION_FIELDS = ("content-type", "content-encoding", "content-language")


class Verdict(StrEnum):
    """A check's outcome; only FAIL makes the audit fail."""

    PASS = "pass"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Probe:
    """One request to send to the audited URL.

    ``wire`` asks the sender to report the bytes actually sent after the header section: an HTTP
    client discards the body of a 304 or HEAD answer, which is exactly what must be checked there.
    """

    method: str
    headers: Headers = ()
    body: bytes = b""
    wire: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """A response as received: status, header fields in order, and the body bytes."""

    status: int
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        """A field value by case-insensitive name, repeated fields joined (RFC 9110 §5.3)."""
        return get_header(self.headers, name)


@dataclass(frozen=True, slots=True)
class Check:
    """One audited rule: a short kebab-case ``name``, its verdict and a one-line detail."""

    name: str
    verdict: Verdict
    detail: str


Send = Callable[[Probe], Answer]


def exit_code(checks: Sequence[Check]) -> int:
    """1 when any check failed, else 0."""
    return 1 if any(c.verdict is Verdict.FAIL for c in checks) else 0


def audit(send: Send, *, writes: bool = False) -> list[Check]:
    """Probe a URL as a client would and judge every answer.

    GET twice, revalidate with If-None-Match (exact, weak form, list, non-matching) and with
    If-Modified-Since, HEAD, and with ``writes`` a PUT with a stale If-Match and one without.
    Exceptions raised by ``send`` (transport errors) propagate.
    """
    first = send(Probe("GET"))
    if not 200 <= first.status < 300:
        return [
            Check(
                "get-status",
                Verdict.FAIL,
                f"GET answered {first.status}: validators only apply to a 2xx representation "
                "(RFC 9110 §13.2.1)",
            )
        ]
    checks = [Check("get-status", Verdict.PASS, f"GET answered {first.status}")]
    second = send(Probe("GET"))
    raw_etag = first.header("etag")
    etag = etag_or_none(raw_etag)
    checks += etag_checks(raw_etag, etag, first, second)
    checks.append(cache_control_check(first.header("cache-control"), has_etag=etag is not None))
    last_modified = first.header("last-modified")
    if etag is not None and raw_etag is not None:
        exact = send(Probe("GET", (("If-None-Match", raw_etag),), wire=True))
        checks += revalidation_checks(first, exact, "If-None-Match")
        other_form = ETag(etag.tag, weak=not etag.weak)
        checks.append(
            match_check(
                "if-none-match-weak-form",
                send(Probe("GET", (("If-None-Match", str(other_form)),))),
                f"If-None-Match: {other_form} (weak comparison ignores W/, RFC 9110 §13.1.2)",
            )
        )
        listed = f"{NO_SUCH_TAG}, {raw_etag}"
        checks.append(
            match_check(
                "if-none-match-list",
                send(Probe("GET", (("If-None-Match", listed),))),
                f"If-None-Match: {listed} (any member may match, RFC 9110 §13.1.2)",
            )
        )
        checks.append(mismatch_check(send(Probe("GET", (("If-None-Match", NO_SUCH_TAG),)))))
    else:
        checks.append(Check("if-none-match", Verdict.SKIP, "no valid ETag to revalidate with"))
    if parse_http_date(last_modified) is not None and last_modified is not None:
        since = send(Probe("GET", (("If-Modified-Since", last_modified),), wire=True))
        checks.append(if_modified_since_check(since))
        if since.status == 304:
            checks.append(no_body_check("if-modified-since-no-body", since))
    else:
        checks.append(last_modified_check(last_modified))
    checks += head_checks(first, send(Probe("HEAD", wire=True)))
    if writes:
        checks += write_checks(first, etag, send)
    return checks


def etag_checks(raw: str | None, etag: ETag | None, first: Answer, second: Answer) -> list[Check]:
    """Is there a valid ETag, is it strong, and does a second GET give the same one?"""
    if raw is None:
        return [
            Check(
                "etag-present",
                Verdict.FAIL,
                "no ETag: clients can only revalidate by date, or re-download (RFC 9110 §8.8.3)",
            )
        ]
    if etag is None:
        return [Check("etag-present", Verdict.FAIL, f"ETag {raw!r} is not an entity-tag (RFC 9110 §8.8.3)")]
    checks = [Check("etag-present", Verdict.PASS, f"ETag: {etag}")]
    if etag.weak:
        checks.append(
            Check(
                "etag-strength",
                Verdict.INFO,
                "weak: fine for If-None-Match, but never matches If-Match or If-Range (RFC 9110 §8.8.3.2)",
            )
        )
    else:
        checks.append(Check("etag-strength", Verdict.PASS, "strong"))
    again = etag_or_none(second.header("etag"))
    if again == etag:
        checks.append(Check("etag-stable", Verdict.PASS, "a second GET gave the same ETag"))
    elif second.body == first.body:
        checks.append(
            Check(
                "etag-stable",
                Verdict.FAIL,
                f"same body, different ETag on a second GET ({etag} then {second.header('etag')}): "
                "no revalidation can ever succeed",
            )
        )
    else:
        checks.append(
            Check(
                "etag-stable",
                Verdict.WARN,
                "the body and the ETag both changed between two GETs: the resource changes (or embeds "
                "something per request), so revalidation rarely succeeds",
            )
        )
    return checks


_REVALIDATION_HINTS = (
    "no-cache",
    "must-revalidate",
    "proxy-revalidate",
    "stale-while-revalidate",
    "immutable",
)


def cache_control_check(value: str | None, *, has_etag: bool) -> Check:
    """Is the Cache-Control of the 200 present and coherent with revalidation (RFC 9111 §5.2.2)?"""
    name = "cache-control"
    if value is None:
        return Check(
            name,
            Verdict.WARN,
            "none: caches then pick a heuristic lifetime (RFC 9111 §4.2.2); say no-cache or max-age",
        )
    cc = parse_cache_control(value)
    if "no-store" in cc:
        if has_etag:
            return Check(name, Verdict.WARN, f"{value!r}: no-store means the ETag is never revalidated")
        return Check(name, Verdict.INFO, f"{value!r}: responses are never stored")
    if "max-age" in cc and delta_seconds(cc["max-age"]) is None:
        return Check(name, Verdict.WARN, f"{value!r}: max-age is not delta-seconds (RFC 9111 §1.2.2)")
    max_age = delta_seconds(cc.get("max-age"))
    if max_age and not any(hint in cc for hint in _REVALIDATION_HINTS):
        return Check(
            name,
            Verdict.WARN,
            f"{value!r}: max-age without must-revalidate or no-cache lets a disconnected cache serve "
            "it stale (RFC 9111 §4.2.4)",
        )
    return Check(name, Verdict.PASS, repr(value))


def revalidation_checks(first: Answer, answer: Answer, field: str) -> list[Check]:
    """A revalidation with the current validator must be a bare 304 carrying the §15.4.5 fields."""
    name = "if-none-match-304"
    if answer.status != 304:
        return [
            Check(
                name,
                Verdict.FAIL,
                f"{field} with the current ETag answered {answer.status}, not 304 (RFC 9110 §13.1.2)",
            )
        ]
    checks = [Check(name, Verdict.PASS, f"{field} with the current ETag answered 304")]
    checks.append(no_body_check("304-no-body", answer))
    checks.append(not_modified_fields_check(first, answer))
    checks.append(not_modified_metadata_check(first, answer))
    return checks


def no_body_check(name: str, answer: Answer) -> Check:
    """A 304 or a HEAD answer ends with its header section: no content (RFC 9110 §15.4.5, §9.3.2)."""
    what = "304" if answer.status == 304 else "HEAD answer"
    if answer.body:
        return Check(name, Verdict.FAIL, f"the {what} carried {len(answer.body)} body bytes")
    return Check(name, Verdict.PASS, f"the {what} carried no body")


def not_modified_fields_check(first: Answer, answer: Answer) -> Check:
    """The 304 must carry the fields the 200 carried among Cache-Control, Content-Location, Date,
    ETag, Expires, Vary (RFC 9110 §15.4.5), and the same ETag."""
    name = "304-headers"
    required = sorted({field.lower() for field, _ in not_modified_headers(first.headers)})
    missing = [field for field in required if answer.header(field) is None]
    if missing:
        return Check(name, Verdict.FAIL, f"the 304 lacks {', '.join(missing)}, which the 200 carried")
    sent = etag_or_none(answer.header("etag"))
    if sent is not None and sent != etag_or_none(first.header("etag")):
        return Check(name, Verdict.FAIL, f"the 304 names ETag {sent}, the 200 {first.header('etag')}")
    return Check(name, Verdict.PASS, f"the 304 carries {', '.join(required) or 'nothing required'}")


def not_modified_metadata_check(first: Answer, answer: Answer) -> Check:
    """A 304's Content-Length may only repeat the 200's length (RFC 9110 §8.6); other representation
    metadata should not be sent (§15.4.5)."""
    name = "304-no-content-headers"
    length = answer.header("content-length")
    if length is not None and length.strip() != str(len(first.body)):
        return Check(
            name,
            Verdict.FAIL,
            f"Content-Length: {length} on the 304, but the 200's content is {len(first.body)} bytes "
            "(RFC 9110 §8.6)",
        )
    extra = [field for field in _REPRESENTATION_FIELDS if answer.header(field) is not None]
    if length is not None:
        extra.append("content-length")
    if extra:
        return Check(name, Verdict.WARN, f"the 304 repeats {', '.join(extra)} (RFC 9110 §15.4.5: SHOULD NOT)")
    return Check(name, Verdict.PASS, "no Content-Type or Content-Length on the 304")


def match_check(name: str, answer: Answer, sent: str) -> Check:
    """A condition that matches the current ETag must give 304."""
    if answer.status == 304:
        return Check(name, Verdict.PASS, f"{sent} answered 304")
    return Check(name, Verdict.FAIL, f"{sent} answered {answer.status}, not 304")


def mismatch_check(answer: Answer) -> Check:
    """If-None-Match with a tag the server never issued must give the full 200."""
    name = "if-none-match-mismatch"
    if 200 <= answer.status < 300 and answer.body:
        return Check(
            name, Verdict.PASS, f"a non-matching If-None-Match answered {answer.status} with the body"
        )
    if 200 <= answer.status < 300:
        return Check(
            name, Verdict.WARN, f"a non-matching If-None-Match answered {answer.status} without a body"
        )
    return Check(
        name,
        Verdict.FAIL,
        f"If-None-Match: {NO_SUCH_TAG} answered {answer.status}: it matches nothing (RFC 9110 §13.1.2)",
    )


def if_modified_since_check(answer: Answer) -> Check:
    """If-Modified-Since with the Last-Modified just received should give 304 (RFC 9110 §13.1.3)."""
    name = "if-modified-since-304"
    if answer.status == 304:
        return Check(name, Verdict.PASS, "If-Modified-Since with the Last-Modified answered 304")
    return Check(
        name,
        Verdict.WARN,
        f"If-Modified-Since with the Last-Modified answered {answer.status}: date revalidation unused",
    )


def last_modified_check(value: str | None) -> Check:
    """Without a valid Last-Modified there is no date-based revalidation to test."""
    if value is None:
        return Check("last-modified", Verdict.INFO, "no Last-Modified: revalidation relies on the ETag alone")
    return Check(
        "last-modified", Verdict.WARN, f"Last-Modified {value!r} is not an HTTP-date (RFC 9110 §5.6.7)"
    )


def head_checks(first: Answer, head: Answer) -> list[Check]:
    """HEAD must answer like GET without content: same status and ETag (RFC 9110 §9.3.2)."""
    if head.status != first.status:
        return [Check("head-parity", Verdict.FAIL, f"HEAD answered {head.status}, GET {first.status}")]
    get_tag, head_tag = first.header("etag"), head.header("etag")
    if etag_or_none(get_tag) != etag_or_none(head_tag):
        detail = f"HEAD gave ETag {head_tag}, GET {get_tag}" if head_tag else "HEAD gave no ETag"
        checks = [Check("head-parity", Verdict.FAIL, detail)]
    else:
        checks = [Check("head-parity", Verdict.PASS, "HEAD gave the status and ETag of GET")]
    checks.append(no_body_check("head-no-body", head))
    return checks


def write_checks(first: Answer, etag: ETag | None, send: Send) -> list[Check]:
    """PUT the representation back with a stale If-Match (412 expected), then without (428 if the
    server requires preconditions, RFC 6585 §3). Only run when the user allows writes."""
    content_type = first.header("content-type")
    base: Headers = (("Content-Type", content_type),) if content_type else ()
    stale = send(Probe("PUT", (*base, ("If-Match", STALE_TAG)), first.body))
    checks: list[Check]
    if stale.status in (405, 501):
        return [Check("put", Verdict.INFO, f"PUT answered {stale.status}: no write checks apply")]
    if stale.status == 412:
        checks = [Check("put-stale-if-match", Verdict.PASS, "PUT with a stale If-Match answered 412")]
    else:
        checks = [
            Check(
                "put-stale-if-match",
                Verdict.FAIL,
                f"PUT with If-Match: {STALE_TAG} answered {stale.status}, not 412 (RFC 9110 §13.1.1)",
            )
        ]
    if etag is not None and etag.weak:
        checks.append(
            Check("put-if-match-weak", Verdict.INFO, "the ETag is weak: no If-Match can ever match it")
        )
    bare = send(Probe("PUT", base, first.body))
    if bare.status == 428:
        detail, verdict = "PUT without If-Match answered 428: the server requires preconditions", Verdict.PASS
    elif 200 <= bare.status < 300:
        detail = (
            f"PUT without If-Match answered {bare.status}: the server does not require preconditions "
            "(428, RFC 6585 §3), so concurrent writers can lose updates"
        )
        verdict = Verdict.INFO
    else:
        detail, verdict = f"PUT without If-Match answered {bare.status}", Verdict.INFO
    checks.append(Check("put-without-if-match", verdict, detail))
    return checks
