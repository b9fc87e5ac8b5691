"""The shared RFC 9110 conformance table, run THROUGH the adapters (not only through ``evaluate``).

Each case becomes a real request to a WSGI app behind ``ETagMiddleware`` and to a Flask view behind
``ETagKit``, in the two ways each adapter learns the current validator: before the handler (the
``validator=`` callable / the ``etag=`` and ``last_modified=`` view callables) and after it (the
handler sets ETag / Last-Modified itself, or the body is hashed). Expected 200 means "the handler
ran and answered 200". Policy-dependent cases are checked under the default (RFC) policy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment
from wsgiref.validate import validator

import pytest
from flask import Flask
from support import CONFORMANCE
from werkzeug.test import EnvironBuilder

from etagkit import ETag, Validator, parse_http_date
from etagkit.flask import ETagKit
from etagkit.wsgi import ETagMiddleware

_TABLE = CONFORMANCE / "preconditions.json"
CASES: list[dict[str, Any]] = json.loads(_TABLE.read_text()) if _TABLE.is_file() else []
SAFE = ("GET", "HEAD", "OPTIONS")


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in cases]


def _exists(case: dict[str, Any]) -> bool:
    return bool(case.get("resource_exists", True))


def _representation_headers(case: dict[str, Any]) -> list[tuple[str, str]]:
    headers = [("Content-Type", "text/plain")]
    if case["resource_etag"] is not None:
        headers.append(("ETag", case["resource_etag"]))
    if case["resource_last_modified"] is not None:
        headers.append(("Last-Modified", case["resource_last_modified"]))
    return headers


AFTER = [c for c in CASES if c["request_method"] in SAFE and _exists(c)]


def test_the_table_is_there(conformance_dir: Path) -> None:
    assert (conformance_dir / "preconditions.json").resolve() == _TABLE.resolve()
    assert len(CASES) >= 50 and len(AFTER) >= 40


def _status(app: Any, case: dict[str, Any]) -> int:
    environ = EnvironBuilder(
        path="/r", method=case["request_method"], headers=case["request_headers"]
    ).get_environ()
    got: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        got.append(status)
        return lambda data: None

    result = app(environ, start_response)
    try:
        for _ in result:
            pass
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return int(got[-1][:3])


def _plain_app(case: dict[str, Any], *, with_validators: bool) -> Any:
    headers = _representation_headers(case) if with_validators else [("Content-Type", "text/plain")]

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", list(headers))
        return [b"the representation"]

    return app


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_middleware_with_the_validator_known_before_the_app(case: dict[str, Any]) -> None:
    current = Validator(
        case["resource_etag"],
        parse_http_date(case["resource_last_modified"]),
        exists=_exists(case),
    )
    inner = _plain_app(case, with_validators=False)
    mw = validator(ETagMiddleware(validator(inner), validator=lambda environ: current))
    assert _status(mw, case) == case["expected_status"], case["note"]


@pytest.mark.parametrize("case", AFTER, ids=_ids(AFTER))
def test_middleware_with_the_validator_from_the_response(case: dict[str, Any]) -> None:
    inner = _plain_app(case, with_validators=True)
    mw = validator(ETagMiddleware(validator(inner)))
    assert _status(mw, case) == case["expected_status"], case["note"]


def _flask_app(case: dict[str, Any], *, before: bool) -> Flask:
    app = Flask(__name__)
    kit = ETagKit(app)
    etag_value, modified = case["resource_etag"], case["resource_last_modified"]
    options: dict[str, Any] = {}
    if before:
        if not _exists(case):
            options["etag"] = lambda: None
        elif etag_value is not None:
            options["etag"] = lambda: ETag.parse(etag_value)
        if modified is not None:
            options["last_modified"] = lambda: parse_http_date(modified)

    @app.route("/r", methods=[case["request_method"]])
    @kit.conditional(**options)
    def resource() -> Any:
        if before:
            return "the representation"
        return "the representation", 200, _representation_headers(case)

    return app


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_flask_with_the_validator_known_before_the_view(case: dict[str, Any]) -> None:
    app = _flask_app(case, before=True)
    got = app.test_client().open("/r", method=case["request_method"], headers=case["request_headers"])
    assert got.status_code == case["expected_status"], case["note"]


@pytest.mark.parametrize("case", AFTER, ids=_ids(AFTER))
def test_flask_with_the_validator_from_the_response(case: dict[str, Any]) -> None:
    app = _flask_app(case, before=False)
    got = app.test_client().open("/r", method=case["request_method"], headers=case["request_headers"])
    assert got.status_code == case["expected_status"], case["note"]
