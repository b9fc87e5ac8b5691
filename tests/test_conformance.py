"""The shared RFC 9110 conformance vectors, every case, under the default and the named policies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from etagkit import (
    ConditionalPolicy,
    ETag,
    evaluate,
    not_modified_headers,
    parse_etags,
    parse_http_date,
    range_applies,
)

VECTORS = Path(__file__).resolve().parent / "data" / "conformance"


def _load(name: str) -> Any:
    # Collection-time read: a missing file gives no cases, and test_vectors_present then fails.
    path = VECTORS / name
    return json.loads(path.read_text()) if path.is_file() else None


PRECONDITIONS: list[dict[str, Any]] = _load("preconditions.json") or []
EXTRA: dict[str, Any] = _load("etag_extra.json") or {}
POLICY_CASES = [
    (case, name, status)
    for case in PRECONDITIONS
    for name, status in case.get("policy_dependent", {}).items()
]


def _resource_etag(value: str | None) -> ETag | None:
    """The vectors give the resource's ETag in header form, or (from some peers' tests) bare."""
    if value is None:
        return None
    return ETag.parse(value) if value.startswith(('"', 'W/"')) else ETag(value)


def _status(case: dict[str, Any], policy: ConditionalPolicy) -> int:
    outcome = evaluate(
        case["request_method"],
        case["request_headers"],
        etag=_resource_etag(case["resource_etag"]),
        last_modified=parse_http_date(case["resource_last_modified"]),
        exists=case.get("resource_exists", True),
        policy=policy,
    )
    return outcome.status or 200


def test_vectors_present(conformance_dir: Path) -> None:
    assert json.loads((conformance_dir / "preconditions.json").read_text()) == PRECONDITIONS
    assert len(PRECONDITIONS) > 50
    assert {"if_range", "parse", "not_modified_headers"} <= set(EXTRA)
    assert POLICY_CASES, "the policy-dependent cases must be exercised"


@pytest.mark.parametrize("case", PRECONDITIONS, ids=[c["id"] for c in PRECONDITIONS])
def test_precondition_vector(conformance_dir: Path, case: dict[str, Any]) -> None:
    assert _status(case, ConditionalPolicy()) == case["expected_status"], case.get("note")


@pytest.mark.parametrize(
    ("case", "policy_name", "expected"), POLICY_CASES, ids=[f"{c['id']}-{n}" for c, n, _ in POLICY_CASES]
)
def test_precondition_vector_under_named_policy(
    conformance_dir: Path, case: dict[str, Any], policy_name: str, expected: int
) -> None:
    policy = ConditionalPolicy(**{policy_name: True})
    assert _status(case, policy) == expected, case.get("note")
    # and the baseline really differs, so the switch is what made the difference
    assert _status(case, ConditionalPolicy()) == case["expected_status"] != expected


IF_RANGE = EXTRA.get("if_range", [])


@pytest.mark.parametrize("case", IF_RANGE, ids=[c["id"] for c in IF_RANGE])
def test_if_range_vector(conformance_dir: Path, case: dict[str, Any]) -> None:
    etag = _resource_etag(case["resource_etag"])
    last_modified = parse_http_date(case["resource_last_modified"])
    outcome = evaluate(
        case["request_method"], case["request_headers"], etag=etag, last_modified=last_modified
    )
    if outcome.status is not None:
        status = outcome.status
    else:
        applies = range_applies(case["request_headers"], etag=etag, last_modified=last_modified)
        status = 206 if applies else 200
    assert status == case["expected_status"], case.get("note")


def _parse_cases(function: str) -> list[dict[str, Any]]:
    return [c for c in EXTRA.get("parse", []) if c["function"] == function and isinstance(c["input"], str)]


def test_parse_vectors_rfc_reading(conformance_dir: Path) -> None:
    """The peers' parse inputs, read the RFC way (several peer outputs are wrong on purpose)."""
    expected = {
        '"foo", "bar", W/"baz", blar': (ETag("foo"), ETag("bar"), ETag("baz", weak=True)),
        'W/"foo"': (ETag("foo", weak=True),),
        ' "x" , "y" ': (ETag("x"), ETag("y")),
        '"a,b", "c"': (ETag("a,b"), ETag("c")),
        '*, "bar"': (ETag("bar"),),
        'w/"abc"': (),
        '"" ,  "etag", "e\\\\tag", W/"weak"': (
            ETag(""),
            ETag("etag"),
            ETag("e\\\\tag"),
            ETag("weak", weak=True),
        ),
        "*": "*",
        '"etag", "e\\"t\\"ag"': (ETag("etag"),),
        '"spring,framework"': (ETag("spring,framework"),),
        "0a4d55a8d778e5022fab701977c5d840bbc486d0xyz": (),
    }
    inputs = [
        c["input"]
        for c in _parse_cases("werkzeug.http.parse_etags") + _parse_cases("django.utils.http.parse_etags")
    ]
    assert sorted(inputs) == sorted(expected)
    for value in inputs:
        assert parse_etags(value) == expected[value], value


def test_parse_vector_two_field_lines(conformance_dir: Path) -> None:
    (case,) = [
        c
        for c in EXTRA["parse"]
        if c["function"] == "HttpHeaders.getIfMatch" and isinstance(c["input"], list)
    ]
    headers = [("If-Match", line) for line in case["input"]]
    joined = ", ".join(value for _, value in headers)
    assert [str(tag) for tag in parse_etags(joined) or ()] == case["output"]
    assert evaluate("PUT", headers, etag='"v2,2"').status is None
    assert evaluate("PUT", headers, etag='"v2,1"').status == 412  # weak member: no strong match


def test_not_modified_headers_vector(conformance_dir: Path) -> None:
    spec = EXTRA["not_modified_headers"]
    kept = not_modified_headers(spec["input_200_headers"])
    assert sorted(name for name, _ in kept) == sorted(spec["rfc9110_15.4.5_must_if_present_in_200"])
    assert all(spec["input_200_headers"][name] == value for name, value in kept)
