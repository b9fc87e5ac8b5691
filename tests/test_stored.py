"""The stored-ETag flow both adapters call (etagkit/_stored.py), over a real TagCache and plain values."""

from __future__ import annotations

from typing import Any

import pytest
from support import FakeTimer

from etagkit._environ import RequestFields
from etagkit._stored import StoredFlow, check_before, stale_tags
from etagkit._validators import ValidatorStore
from etagkit.cache import TagCache
from etagkit.core.keys import path_tag
from etagkit.core.reply import Reply

PATH, ORIGIN = "/books", "http://shop.example"


def _fields(**values: str) -> RequestFields:
    fields = RequestFields()
    fields.update({k.replace("_", "-"): v for k, v in values.items()})
    return fields


def _open(store: ValidatorStore, method: str, headers: RequestFields, **options: Any) -> StoredFlow | None:
    return StoredFlow.open(
        store,
        method,
        headers,
        path=PATH,
        query="",
        origin=ORIGIN,
        scope=options.pop("scope", None),
        request_headers=headers,
        route="/books",
        **options,
    )


@pytest.fixture
def store() -> ValidatorStore:
    return ValidatorStore(TagCache(timer=FakeTimer()))


def _not_called(*_: Any) -> Any:
    raise AssertionError("read back without need")


def test_a_200_stored_under_its_ticket_answers_the_next_revalidation_with_a_stored_304(
    store: ValidatorStore,
) -> None:
    first = _open(store, "GET", _fields())
    assert first is not None and first.record is None
    first.begin(lambda: ["books"])
    assert first.tags == [path_tag(PATH, ORIGIN), "books"]
    headers = [("Content-Type", "application/json"), ("ETag", '"v1"'), ("Content-Length", "42")]
    first.remember(200, headers, Reply(200, tuple(headers)), 42)

    again = _open(store, "GET", _fields(if_none_match='"v1"'))
    assert again is not None and again.record is not None
    reply, saved, stored = check_before(
        "GET", _fields(if_none_match='"v1"'), None, again, app=_not_called, environ={},
        require_precondition=False, json_errors=None,
    )  # fmt: skip
    assert reply is not None and reply.status == 304 and (saved, stored) == (42, True)

    store.invalidate("books")  # a tag of the record: the next revalidation runs the handler
    gone = _open(store, "GET", _fields(if_none_match='"v1"'))
    assert gone is not None and gone.record is None


@pytest.mark.parametrize(
    ("method", "headers", "options"),
    [
        ("POST", _fields(), {}),  # an unconditional write has nothing to look up
        ("OPTIONS", _fields(if_none_match='"v1"'), {}),  # safe, not GET/HEAD
        ("GET", _fields(cookie="session=1"), {}),  # another user's validator: never shared
        ("GET", _fields(), {"cheap": True}),  # the app's own validator: nothing to store
    ],
)
def test_no_flow_where_stored_validators_do_not_apply(
    store: ValidatorStore, method: str, headers: RequestFields, options: dict[str, Any]
) -> None:
    assert _open(store, method, headers, **options) is None


def test_a_declared_scope_keys_a_credentialed_request_apart(store: ValidatorStore) -> None:
    alice = _open(store, "GET", _fields(cookie="s=a"), scope=lambda: "alice")
    bob = _open(store, "GET", _fields(cookie="s=b"), scope=lambda: "bob")
    assert alice is not None and bob is not None and alice.key != bob.key


def test_a_conditional_write_is_keyed_but_takes_no_ticket(store: ValidatorStore) -> None:
    flow = _open(store, "PUT", _fields(if_match='"v1"'))
    assert flow is not None
    flow.begin()
    assert flow.ticket is None


def test_a_conditional_write_without_a_known_validator_reads_it_back() -> None:
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["REQUEST_METHOD"])
        start_response("200 OK", [("ETag", '"v2"')])
        return [b"now"]

    reply, saved, stored = check_before(
        "PUT", _fields(if_match='"v1"'), None, None, app=app, environ={"REQUEST_METHOD": "PUT"},
        require_precondition=False, json_errors=False,
    )  # fmt: skip
    assert seen == ["GET"] and reply is not None and reply.status == 412 and (saved, stored) == (0, False)


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [("PUT", 204, True), ("DELETE", 200, True), ("PUT", 412, False), ("GET", 200, False)],
)
def test_only_a_successful_unsafe_request_invalidates(method: str, status: int, expected: bool) -> None:
    tags = stale_tags(method, status, PATH, ORIGIN, lambda: ["books"])
    assert tags == ((path_tag(PATH, ORIGIN), "books") if expected else ())
