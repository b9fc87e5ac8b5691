"""etagkit.core.audit: what `etagkit check` concludes from given answers (no network: answers are input)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etagkit import parse_http_date
from etagkit.core.audit import (
    NO_SUCH_TAG,
    Answer,
    Check,
    Probe,
    Verdict,
    audit,
    cache_control_check,
    exit_code,
    not_modified_fields_check,
    not_modified_metadata_check,
)
from etagkit.core.preconditions import Outcome, evaluate, not_modified_headers

BODY = b'{"id": 1}'
LAST_MODIFIED = "Mon, 02 Jan 2023 00:00:00 GMT"
FULL = (
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(BODY))),
    ("Date", "Tue, 03 Jan 2023 00:00:00 GMT"),
    ("ETag", '"v1"'),
    ("Last-Modified", LAST_MODIFIED),
    ("Cache-Control", "max-age=5, must-revalidate"),
    ("Vary", "Accept-Encoding"),
)


def resource(
    headers: tuple[tuple[str, str], ...] = FULL, body: bytes = BODY, *, requires_if_match: bool = True
) -> Callable[[Probe], Answer]:
    """A correct origin server as a function: the core's evaluate() decides, as an adapter would."""
    raw = dict(headers).get("ETag")
    etag = None if raw is None or '"' not in raw else raw  # an invalid ETag validates nothing
    last_modified = parse_http_date(dict(headers).get("Last-Modified"))

    def send(probe: Probe) -> Answer:
        if probe.method == "PUT" and requires_if_match and not any(k == "If-Match" for k, _ in probe.headers):
            return Answer(428, (), b"")
        outcome = evaluate(probe.method, probe.headers, etag=etag, last_modified=last_modified)
        if outcome is Outcome.NOT_MODIFIED:
            return Answer(304, tuple(not_modified_headers(headers)), b"")
        if outcome is Outcome.PRECONDITION_FAILED:
            return Answer(412, (), b"stale")
        return Answer(200, headers, b"" if probe.method == "HEAD" else body)

    return send


def verdicts(checks: list[Check]) -> dict[str, Verdict]:
    return {c.name: c.verdict for c in checks}


def test_a_correct_server_passes_every_check() -> None:
    checks = audit(resource(), writes=True)
    assert exit_code(checks) == 0
    found = verdicts(checks)
    assert set(found.values()) == {Verdict.PASS}
    for name in (
        "etag-present",
        "etag-stable",
        "if-none-match-304",
        "304-no-body",
        "304-headers",
        "304-no-content-headers",
        "if-none-match-weak-form",
        "if-none-match-list",
        "if-none-match-mismatch",
        "if-modified-since-304",
        "head-parity",
        "head-no-body",
        "put-stale-if-match",
        "put-without-if-match",
    ):
        assert found[name] is Verdict.PASS, name


def test_probes_sent_and_writes_only_on_request() -> None:
    sent: list[Probe] = []
    inner = resource()

    def send(probe: Probe) -> Answer:
        sent.append(probe)
        return inner(probe)

    audit(send)
    assert "PUT" not in {p.method for p in sent}
    assert sum(p.method == "GET" and not p.headers for p in sent) == 2
    conditions = {dict(p.headers).get("If-None-Match") for p in sent}
    assert {'"v1"', 'W/"v1"', f'{NO_SUCH_TAG}, "v1"', NO_SUCH_TAG} <= conditions
    assert all(p.wire for p in sent if p.method == "HEAD" or dict(p.headers).get("If-None-Match") == '"v1"')
    sent.clear()
    audit(send, writes=True)
    assert [dict(p.headers).get("If-Match") for p in sent if p.method == "PUT"] == [
        '"etagkit-check-stale-tag"',
        None,
    ]


def test_no_etag_fails_and_skips_etag_revalidation() -> None:
    headers = tuple((k, v) for k, v in FULL if k != "ETag")
    checks = audit(resource(headers))
    found = verdicts(checks)
    assert found["etag-present"] is Verdict.FAIL
    assert found["if-none-match"] is Verdict.SKIP
    assert found["if-modified-since-304"] is Verdict.PASS  # dates still revalidate
    assert exit_code(checks) == 1


def test_invalid_etag_fails() -> None:
    headers = tuple((k, "v1") if k == "ETag" else (k, v) for k, v in FULL)
    assert verdicts(audit(resource(headers)))["etag-present"] is Verdict.FAIL


def test_changing_etag_with_same_body_fails() -> None:
    counter = iter(range(1000))
    inner = resource()

    def send(probe: Probe) -> Answer:
        answer = inner(probe)
        fresh = tuple((k, f'"n{next(counter)}"') if k == "ETag" else (k, v) for k, v in answer.headers)
        return Answer(200 if answer.status == 304 else answer.status, fresh, BODY)

    found = verdicts(audit(send))
    assert found["etag-stable"] is Verdict.FAIL
    assert found["if-none-match-304"] is Verdict.FAIL


def test_changing_body_and_etag_only_warns_about_stability() -> None:
    counter = iter(range(1000))
    inner = resource()

    def send(probe: Probe) -> Answer:
        n = next(counter)
        if probe.method == "GET" and not probe.headers:
            headers = tuple((k, f'"n{n}"') if k == "ETag" else (k, v) for k, v in FULL)
            return Answer(200, headers, b"%d" % n)
        return inner(probe)

    assert verdicts(audit(send))["etag-stable"] is Verdict.WARN


def test_a_304_with_a_body_and_wrong_length_fails() -> None:
    inner = resource()

    def send(probe: Probe) -> Answer:
        answer = inner(probe)
        if answer.status == 304:
            return Answer(304, (*answer.headers, ("Content-Length", "0")), b"oops")
        return answer

    found = verdicts(audit(send))
    assert found["304-no-body"] is Verdict.FAIL
    assert found["304-no-content-headers"] is Verdict.FAIL
    assert found["if-modified-since-no-body"] is Verdict.FAIL


def test_304_fields_of_rfc9110_15_4_5() -> None:
    first = Answer(200, FULL, BODY)
    ok = Answer(304, tuple(not_modified_headers(FULL)), b"")
    assert not_modified_fields_check(first, ok).verdict is Verdict.PASS
    bare = Answer(304, (("ETag", '"v1"'),), b"")
    check = not_modified_fields_check(first, bare)
    assert check.verdict is Verdict.FAIL
    assert "cache-control" in check.detail and "vary" in check.detail and "date" in check.detail
    other_tag = Answer(304, tuple((k, '"v2"') if k == "ETag" else (k, v) for k, v in ok.headers), b"")
    assert not_modified_fields_check(first, other_tag).verdict is Verdict.FAIL
    typed = Answer(304, (*ok.headers, ("Content-Type", "text/html")), b"")
    assert not_modified_metadata_check(first, typed).verdict is Verdict.WARN
    same_length = Answer(304, (*ok.headers, ("Content-Length", str(len(BODY)))), b"")
    assert not_modified_metadata_check(first, same_length).verdict is Verdict.WARN


def test_ignoring_if_none_match_fails() -> None:
    def send(probe: Probe) -> Answer:
        return Answer(200, FULL, b"" if probe.method == "HEAD" else BODY)

    found = verdicts(audit(send))
    assert found["if-none-match-304"] is Verdict.FAIL
    assert found["if-none-match-weak-form"] is Verdict.FAIL
    assert found["if-none-match-mismatch"] is Verdict.PASS
    assert found["if-modified-since-304"] is Verdict.WARN


def test_strong_comparison_on_if_none_match_fails_the_weak_form() -> None:
    inner = resource()

    def send(probe: Probe) -> Answer:
        if dict(probe.headers).get("If-None-Match", "").startswith("W/"):
            return Answer(200, FULL, BODY)
        return inner(probe)

    assert verdicts(audit(send))["if-none-match-weak-form"] is Verdict.FAIL


def test_weak_etag_is_info_and_its_strong_form_must_match() -> None:
    headers = tuple((k, 'W/"v1"') if k == "ETag" else (k, v) for k, v in FULL)
    checks = audit(resource(headers), writes=True)
    found = verdicts(checks)
    assert found["etag-strength"] is Verdict.INFO
    assert found["if-none-match-weak-form"] is Verdict.PASS
    assert found["put-if-match-weak"] is Verdict.INFO
    assert exit_code(checks) == 0


def test_head_must_match_get() -> None:
    inner = resource()

    def send(probe: Probe) -> Answer:
        if probe.method == "HEAD":
            return Answer(200, (("ETag", '"other"'),), BODY)
        return inner(probe)

    found = verdicts(audit(send))
    assert found["head-parity"] is Verdict.FAIL
    assert found["head-no-body"] is Verdict.FAIL


def test_non_2xx_get_stops_the_audit() -> None:
    checks = audit(lambda probe: Answer(404, (), b"nope"))
    assert [(c.name, c.verdict) for c in checks] == [("get-status", Verdict.FAIL)]


def test_writes_report_what_the_server_does() -> None:
    lax = verdicts(audit(resource(requires_if_match=False), writes=True))
    assert lax["put-stale-if-match"] is Verdict.PASS
    assert lax["put-without-if-match"] is Verdict.INFO
    ignores = verdicts(audit(lambda p: Answer(200, FULL, b"" if p.method == "HEAD" else BODY), writes=True))
    assert ignores["put-stale-if-match"] is Verdict.FAIL
    read_only = resource()

    def no_put(probe: Probe) -> Answer:
        return Answer(405, (), b"") if probe.method == "PUT" else read_only(probe)

    assert verdicts(audit(no_put, writes=True))["put"] is Verdict.INFO


@pytest.mark.parametrize(
    ("value", "has_etag", "expected"),
    [
        (None, True, Verdict.WARN),
        ("no-cache", True, Verdict.PASS),
        ("max-age=0, must-revalidate", True, Verdict.PASS),
        ("max-age=60", True, Verdict.WARN),
        ("public, max-age=60, stale-while-revalidate=30", True, Verdict.PASS),
        ("max-age=abc", True, Verdict.WARN),
        ("no-store", True, Verdict.WARN),
        ("no-store", False, Verdict.INFO),
        ("private, no-cache", False, Verdict.PASS),
    ],
)
def test_cache_control_verdicts(value: str | None, has_etag: bool, expected: Verdict) -> None:
    assert cache_control_check(value, has_etag=has_etag).verdict is expected


header_text = st.text(st.characters(codec="latin-1"), max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    statuses=st.lists(st.integers(100, 599), min_size=1, max_size=12),
    fields=st.lists(
        st.tuples(
            st.sampled_from(["ETag", "Cache-Control", "Last-Modified", "Content-Length", "Vary", "Date"]),
            header_text,
        ),
        max_size=8,
    ),
    body=st.binary(max_size=20),
    writes=st.booleans(),
)
def test_audit_never_raises_on_any_answers(
    statuses: list[int], fields: list[tuple[str, str]], body: bytes, writes: bool
) -> None:
    answers = iter(statuses * 5)

    def send(probe: Probe) -> Answer:
        return Answer(next(answers, 200), tuple(fields), body)

    checks = audit(send, writes=writes)
    assert checks
    assert all(isinstance(c.verdict, Verdict) and c.detail for c in checks)
    assert exit_code(checks) in (0, 1)
