"""The revalidation lane (etagkit/_lane.py) answers only what the exchange answers the same way.

Every request is sent twice through one middleware: once with its lane, once with the lane off (the
exchange decides alone); status, headers and body must be equal. Requests are drawn from the fields
that change the decision (other preconditions, credentials, hosts, methods, ranges).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etagkit._driver import UNREAD
from etagkit.cache import TagCache
from etagkit.metrics import Metrics
from etagkit.wsgi import ETagMiddleware

# The app's body changes after its validator was stored (no invalidation): a request the lane must
# leave to the exchange (credentials, another host ...) then gets the new body's 200, not the stored 304.
BODY = [b'{"books": ["a", "b"]}']


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = BODY[0]
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("ETag", f'"v{len(body)}"'),  # the app's own validators, stored as they are
            ("Last-Modified", "Sat, 01 Jan 2022 00:00:00 GMT"),  # If-Unmodified-Since 2000: a 412
        ],
    )
    return [body]


def environ_of(headers: dict[str, str], method: str = "GET", host: str = "example.com") -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/books",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": host,
        "wsgi.url_scheme": "http",
    }
    for name, value in headers.items():
        environ["REMOTE_USER" if name == "REMOTE_USER" else "HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def call(middleware: ETagMiddleware, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    got: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        got[:] = [status, list(headers)]

    result = middleware(dict(environ), start_response)
    body = b"".join(result)
    getattr(result, "close", lambda: None)()
    return got[0], got[1], body


def primed() -> tuple[ETagMiddleware, str]:
    """A middleware whose stored validator (of the first body) is no longer the app's body's."""
    BODY[0] = b'{"books": ["a", "b"]}'
    middleware = ETagMiddleware(
        app,
        cache=TagCache(),
        stored=True,
        credential_headers=["X-API-Key"],
        allowed_hosts=["example.com"],
        metrics=Metrics(),
    )
    _, headers, _ = call(middleware, environ_of({}))
    call(middleware, environ_of({}))  # stored from now on
    BODY[0] = b'{"books": ["a", "b", "c"]}'
    return middleware, dict(headers)["ETag"]


@pytest.fixture
def stored() -> tuple[ETagMiddleware, str]:
    return primed()


def test_the_plain_revalidation_takes_the_lane(stored: tuple[ETagMiddleware, str]) -> None:
    middleware, tag = stored
    assert middleware.lane is not None
    fast, record = middleware.lane.read(environ_of({"If-None-Match": tag}), "")
    assert fast is not None and fast.reply.status == 304 and record is not None
    assert dict(fast.reply.headers)["ETag"] == tag
    assert call(middleware, environ_of({"If-None-Match": tag}))[0] == "304 Not Modified"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer x"},
        {"Cookie": "session=1"},
        {"REMOTE_USER": ""},
        {"X-API-Key": "k"},
        {"If-Match": '"other"'},
        {"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"},
    ],
)
def test_what_may_change_the_answer_goes_to_the_exchange(
    stored: tuple[ETagMiddleware, str], headers: dict[str, str]
) -> None:
    middleware, tag = stored
    assert middleware.lane is not None
    fast, record = middleware.lane.read(environ_of({"If-None-Match": tag, **headers}), "")
    assert fast is None and record is UNREAD  # not even read: the exchange decides what to read


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer x"},
        {"Cookie": "session=1"},
        {"REMOTE_USER": "ann"},
        {"X-API-Key": "k"},
        {"If-Match": '"other"'},
        {"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"},
    ],
)
@pytest.mark.parametrize("host", ["example.com", "evil.test"])
def test_with_each_such_field_the_answer_is_the_exchanges(headers: dict[str, str], host: str) -> None:
    middleware, tag = primed()
    environ = environ_of({"If-None-Match": tag, **headers}, host=host)
    with_lane = call(middleware, environ)
    middleware, tag = primed()
    middleware.lane = None
    without = call(middleware, environ)
    assert with_lane == without
    assert without[0] != "304 Not Modified"  # the stored 304 would have been wrong for each


def test_no_lane_without_a_store_or_with_a_cheap_validator_or_scope() -> None:
    assert ETagMiddleware(app).lane is None
    assert ETagMiddleware(app, cache=TagCache(), stored=False).lane is None
    assert ETagMiddleware(app, cache=TagCache(), validator=lambda environ: None).lane is None
    assert ETagMiddleware(app, cache=TagCache(), scope=lambda environ: "u").lane is None


def _requests(tag: str) -> st.SearchStrategy[dict[str, Any]]:
    weak = "W/" + tag
    inm = st.sampled_from([tag, tag, tag, weak, '"other"', f'"other", {tag}', "*", "", " ", f"{tag} ", "W/"])
    extras = {
        "If-Match": st.sampled_from([tag, '"other"', "*"]),
        "If-Unmodified-Since": st.sampled_from(["Sat, 01 Jan 2000 00:00:00 GMT", "garbage"]),
        "If-Modified-Since": st.sampled_from(
            ["Sat, 01 Jan 2000 00:00:00 GMT", "Fri, 01 Jan 2100 00:00:00 GMT"]
        ),
        "Authorization": st.just("Bearer x"),
        "Cookie": st.sampled_from(["a=1", ""]),
        "REMOTE_USER": st.sampled_from(["", "ann"]),
        "X-API-Key": st.just("k"),
        "Range": st.just("bytes=0-3"),
        "If-Range": st.sampled_from([tag, '"other"']),
    }

    @st.composite
    def request(draw: st.DrawFn) -> dict[str, Any]:
        # mostly the lane's own shape (a matching If-None-Match) plus one or two fields that may
        # change the answer: each field is then drawn alone often enough to catch a lane that
        # ignores it
        headers = {"If-None-Match": draw(inm)} if draw(st.integers(0, 9)) else {}
        for name in draw(st.lists(st.sampled_from(sorted(extras)), max_size=2, unique=True)):
            headers[name] = draw(extras[name])
        method = draw(st.sampled_from(["GET", "GET", "HEAD", "get"]))
        host = draw(st.sampled_from(["example.com", "example.com", "EXAMPLE.com:80", "evil.test"]))
        return {"headers": headers, "method": method, "host": host}

    return request()


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_lane_and_the_exchange_agree(data: st.DataObject) -> None:
    middleware, tag = primed()  # per example: an anonymous 200 through the exchange stores anew
    request = data.draw(_requests(tag))
    environ = environ_of(request["headers"], request["method"], request["host"])
    lane = middleware.lane
    assert lane is not None
    with_lane = call(middleware, environ)
    middleware, tag = primed()
    middleware.lane = None  # the exchange decides alone
    assert call(middleware, environ) == with_lane


def test_the_memo_of_keys_is_bounded_in_entries_and_bytes(stored: tuple[ETagMiddleware, str]) -> None:
    middleware, tag = stored
    lane = middleware.lane
    assert lane is not None
    for n in range(5000):  # strangers' paths: many distinct targets
        lane.read(environ_of({"If-None-Match": tag}) | {"PATH_INFO": f"/books/{n}"}, "")
    assert 0 < len(lane._keys) <= 4096
    lane._keys.clear()
    lane.read(environ_of({"If-None-Match": tag}) | {"PATH_INFO": "/" + "x" * 5000}, "")
    assert lane._keys == {}  # a long target is keyed every time, never held
    fast, _ = lane.read(environ_of({"If-None-Match": tag}) | {"SERVER_PORT": 80}, "")
    assert fast is not None  # a value of another type still gives the exchange's key
