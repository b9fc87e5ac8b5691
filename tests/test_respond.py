"""The pure conditional-response API (etagkit.core.reply): decisions, keys, stored records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import etagkit
from etagkit import (
    ETag,
    Reply,
    StoredValidator,
    Validator,
    ValidatorStore,
    check_preconditions,
    conditional_response,
    generate_etag,
    path_tag,
    representation_key,
    request_origin,
)
from etagkit._environ import EnvironHeaders
from etagkit.cache import TagCache
from etagkit.core.freshness import invalidates_target
from etagkit.core.headers import get_header
from etagkit.core.keys import shared_lookup_allowed, split_tags, variant_key
from etagkit.core.records import CachedResponse
from etagkit.core.reply import body_needed, coded_etag, error_reply, is_conditional, wants_json
from etagkit.metrics import Metrics

BODY = b'{"books": [1, 2, 3]}'
TAG = generate_etag(BODY)
HEADERS_200 = [
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(BODY))),
    ("Cache-Control", "no-cache"),
    ("Vary", "Accept"),
    ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
    ("Expires", "Mon, 01 Jan 2024 00:00:00 GMT"),
    ("Content-Location", "/books"),
    ("Set-Cookie", "a=b"),
]
LM = datetime(2024, 1, 1, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- conditional_response --------------------------------------------------------------------------


def test_adds_a_strong_etag_of_the_identity_body() -> None:
    reply = conditional_response("GET", {}, 200, HEADERS_200, BODY)
    assert reply.status == 200 and reply.body is None and not reply.replaces_body
    assert reply.etag == TAG and not TAG.weak
    assert ("ETag", str(TAG)) in reply.headers


def test_matching_if_none_match_gives_304_with_exactly_the_15_4_5_headers() -> None:
    reply = conditional_response("GET", {"If-None-Match": str(TAG)}, 200, HEADERS_200, BODY)
    assert reply.status == 304 and reply.body == b"" and reply.status_line == "304 Not Modified"
    names = [k for k, _ in reply.headers]
    assert names == ["Cache-Control", "Vary", "Date", "Expires", "Content-Location", "ETag"]


def test_weak_if_none_match_matches_a_strong_tag() -> None:
    reply = conditional_response("GET", {"If-None-Match": f"W/{TAG}"}, 200, HEADERS_200, BODY)
    assert reply.status == 304


def test_failed_if_match_on_get_is_a_small_412_without_representation_headers() -> None:
    reply = conditional_response("GET", {"If-Match": '"old"'}, 200, HEADERS_200, BODY)
    assert reply.status == 412 and reply.body is not None and len(reply.body) < 200
    names = {k.lower() for k, _ in reply.headers}
    assert names == {"content-type", "content-length"}
    assert json.loads(reply.body)["status"] == 412  # the response was JSON: so is the error


@pytest.mark.parametrize("status", [201, 204, 301, 404, 500])
def test_other_statuses_are_never_hashed(status: int) -> None:
    reply = conditional_response("GET", {"If-None-Match": str(TAG)}, status, HEADERS_200, BODY)
    assert reply == Reply(status, tuple(HEADERS_200))


def test_no_store_and_unsafe_methods_pass_untouched() -> None:
    no_store = [("Cache-Control", "no-store")]
    assert conditional_response("GET", {}, 200, no_store, BODY) == Reply(200, tuple(no_store))
    put = conditional_response("PUT", {"If-Match": '"x"'}, 200, HEADERS_200, BODY)
    assert put.status == 200 and put.etag is None


def test_app_supplied_validators_are_used_and_malformed_ones_left_alone() -> None:
    reply = conditional_response("GET", {"If-None-Match": '"v7"'}, 200, [("ETag", '"v7"')], None)
    assert reply.status == 304
    bad = conditional_response("GET", {"If-None-Match": "v7"}, 200, [("ETag", "v7")], BODY)
    assert bad == Reply(200, (("ETag", "v7"),))
    dated = conditional_response(
        "GET", {"If-Modified-Since": "Tue, 02 Jan 2024 00:00:00 GMT"}, 200, [], None, last_modified=LM
    )
    assert dated.status == 304 and ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT") in dated.headers


def test_head_and_get_get_the_same_etag() -> None:
    get = conditional_response("GET", {}, 200, HEADERS_200, BODY)
    head = conditional_response("HEAD", {"If-None-Match": str(get.etag)}, 200, HEADERS_200, BODY)
    assert head.status == 304 and head.etag == get.etag


def test_a_given_body_declares_its_length_unless_the_response_did() -> None:
    for method in ("GET", "HEAD"):  # HEAD carries the length GET would send (RFC 9110 §9.3.2)
        reply = conditional_response(method, {}, 200, [("Content-Type", "text/plain")], BODY)
        assert ("Content-Length", str(len(BODY))) in reply.headers
    declared = conditional_response("GET", {}, 200, [("content-length", "3")], b"abc")
    assert [v for k, v in declared.headers if k.lower() == "content-length"] == ["3"]
    assert (
        get_header(conditional_response("GET", {}, 200, [], None, etag='"x"').headers, "Content-Length")
        is None
    )


def test_a_gzip_body_and_an_identity_body_never_share_a_strong_tag() -> None:
    gz = coded_etag(ETag("abc"), "gzip")
    assert gz == ETag("abc-gzip") and not gz.weak
    assert coded_etag(ETag("abc"), "identity") == ETag("abc")
    assert coded_etag(ETag("abc"), "gzip", weaken=True) == ETag("abc", weak=True)
    assert coded_etag(ETag("abc", weak=True), "br") == ETag("abc", weak=True)
    encoded = [("Content-Encoding", "gzip")]
    made = generate_etag(b"gz")
    strong = conditional_response("GET", {"If-None-Match": str(made)}, 200, encoded, b"gz")
    assert strong.status == 200 and strong.etag == ETag(f"{made.tag}-gzip")
    weakened = conditional_response(
        "GET", {"If-None-Match": str(made)}, 200, encoded, b"gz", weaken_encoded=True
    )
    assert weakened.status == 304 and weakened.etag == ETag(made.tag, weak=True)


@pytest.mark.parametrize("weaken", [False, True])
def test_the_applications_own_etag_is_never_rewritten_for_a_content_coding(weaken: bool) -> None:
    headers = [("Content-Encoding", "gzip"), ("ETag", '"v7-gz"')]
    own = conditional_response("GET", {}, 200, headers, b"gz", weaken_encoded=weaken)
    assert own.etag == ETag("v7-gz") and ("ETag", '"v7-gz"') in own.headers
    assert conditional_response("GET", {"If-None-Match": '"v7-gz"'}, 200, headers).status == 304
    given = conditional_response("GET", {}, 200, headers[:1], etag=ETag("v7"), weaken_encoded=weaken)
    assert given.etag == ETag("v7")


def test_body_needed_and_invalidates_target() -> None:
    assert body_needed("GET", 200, [])
    assert not body_needed("GET", 200, [("ETag", '"x"')])
    assert not body_needed("GET", 200, [("Cache-Control", "no-store")])
    assert not body_needed("GET", 206, [])
    assert not body_needed("POST", 200, [])
    assert invalidates_target("PUT", 204) and invalidates_target("DELETE", 302)
    assert not invalidates_target("PUT", 412) and not invalidates_target("GET", 200)


# -- check_preconditions ---------------------------------------------------------------------------


def test_unknown_validator_runs_the_handler_unless_428_is_required() -> None:
    assert check_preconditions("PUT", {}, None) is None
    reply = check_preconditions("PUT", {"Accept": "application/json"}, None, require_precondition=True)
    assert reply is not None and reply.status == 428
    assert reply.body is not None and json.loads(reply.body)["status"] == 428
    assert check_preconditions("PUT", {"If-Match": '"a"'}, None, require_precondition=True) is None
    assert check_preconditions("GET", {}, None, require_precondition=True) is None


def test_stale_if_match_fails_before_the_write_runs() -> None:
    reply = check_preconditions("PUT", {"If-Match": '"v1"'}, Validator('"v2"'))
    assert reply is not None and reply.status == 412 and reply.body is not None
    assert check_preconditions("PUT", {"If-Match": '"v2"'}, Validator(ETag("v2"))) is None


def test_star_depends_on_existence() -> None:
    gone = Validator(None, None, exists=False)
    failed = check_preconditions("PUT", {"If-Match": "*"}, gone)
    assert failed is not None and failed.status == 412
    assert check_preconditions("PUT", {"If-None-Match": "*"}, gone) is None
    taken = check_preconditions("PUT", {"If-None-Match": "*"}, Validator('"v"'))
    assert taken is not None and taken.status == 412


def test_304_before_the_handler_carries_the_routes_headers() -> None:
    reply = check_preconditions(
        "GET", {"If-None-Match": '"v"'}, Validator('"v"'), response_headers=[("Cache-Control", "max-age=5")]
    )
    assert reply is not None and reply.status == 304
    assert list(reply.headers) == [("Cache-Control", "max-age=5"), ("ETag", '"v"')]


def test_error_documents() -> None:
    text = error_reply(412)
    assert text.body is not None and text.body.startswith(b"412 Precondition Failed")
    assert ("Content-Length", str(len(text.body))) in text.headers
    problem = error_reply(428, json_body=True, detail="send If-Match")
    assert problem.body is not None and json.loads(problem.body)["detail"] == "send If-Match"
    assert ("Content-Type", "application/problem+json") in problem.headers
    assert wants_json({"Accept": "application/json"})
    assert not wants_json({"Accept": "text/html,application/json;q=0.9"})
    assert wants_json({}, [("Content-Type", "application/vnd.api+json")])
    assert wants_json({"Content-Type": "application/json"})


# -- keys, tags, records ---------------------------------------------------------------------------


def test_representation_key_classes_and_canonical_query() -> None:
    key = representation_key("GET", "/books", "b=2&a=1")
    assert key == representation_key("HEAD", "/books", "a=1&b=2")
    assert key != representation_key("PUT", "/books", "a=1&b=2")
    assert key != representation_key("GET", "/books", "a=1&b=3")
    assert key != representation_key("GET", "/books", "a=1&b=2", scope="user:1")
    assert representation_key("GET", "/b", "x=") != representation_key("GET", "/b", "")
    # a repeated parameter's values keep their order: they are ordered data
    assert representation_key("GET", "/b", "a=2&a=1") != representation_key("GET", "/b", "a=1&a=2")
    assert representation_key("GET", "/b", "a=2&b=0&a=1") == representation_key("GET", "/b", "b=0&a=2&a=1")
    assert key.startswith("etagkit:etag:")
    assert representation_key("GET", "/books", kind="response") != representation_key("GET", "/books")


def test_variant_key_uses_the_varied_request_fields() -> None:
    base = representation_key("GET", "/books")
    assert variant_key(base, {"Accept": "x"}, ()) == base
    json_key = variant_key(base, {"Accept": "application/json"}, ["Accept"])
    assert json_key == variant_key(base, {"accept": " application/json "}, ["accept"])
    assert json_key != variant_key(base, {"Accept": "text/html"}, ["Accept"])
    assert variant_key(base, {}, ["Accept"]) != variant_key(base, {"Accept": ""}, ["Accept"])


def test_shared_lookups_skip_credentialed_requests_without_a_scope() -> None:
    assert shared_lookup_allowed({}, None)
    assert not shared_lookup_allowed({"Authorization": "Bearer x"}, None)
    assert not shared_lookup_allowed({"Cookie": "s=1"}, None)
    assert shared_lookup_allowed({"Cookie": "s=1"}, "user:1")


def test_keys_and_path_tags_are_per_origin() -> None:
    a = request_origin({"wsgi.url_scheme": "http", "HTTP_HOST": "Tenant-A.example:80"})
    assert a == "http://tenant-a.example"
    assert request_origin({"wsgi.url_scheme": "https", "HTTP_HOST": "a.example:443"}) == "https://a.example"
    assert request_origin({"wsgi.url_scheme": "https", "HTTP_HOST": "a.example:80"}) == "https://a.example:80"
    fallback = {"wsgi.url_scheme": "http", "SERVER_NAME": "b.example", "SERVER_PORT": "8080"}
    assert request_origin(fallback) == "http://b.example:8080"
    assert request_origin({"HTTP_HOST": "[::1]:8000"}) == "http://[::1]:8000"
    b = request_origin({"HTTP_HOST": "tenant-b.example"})
    assert representation_key("GET", "/x", origin=a) != representation_key("GET", "/x", origin=b)
    assert representation_key("GET", "/x", origin=a) != representation_key(
        "GET", "/x", origin="https" + a[4:]
    )
    assert path_tag("/x", a) != path_tag("/x", b) and path_tag("/x", a) == path_tag("/x", a)


@given(
    host=st.one_of(st.none(), st.text()),
    scheme=st.one_of(st.none(), st.sampled_from(["http", "https", "HTTPS"]), st.text()),
    port=st.one_of(st.none(), st.integers(), st.text()),
)
def test_request_origin_never_raises_on_stranger_input(host: Any, scheme: Any, port: Any) -> None:
    environ = {"HTTP_HOST": host, "wsgi.url_scheme": scheme, "SERVER_NAME": "srv", "SERVER_PORT": port}
    origin = request_origin({k: v for k, v in environ.items() if v is not None})
    assert origin == origin.lower() and "://" in origin
    assert path_tag("/x", origin).startswith("etagkit:path:")


def test_tags_and_paths() -> None:
    assert split_tags("books, book:1  book:2,,books") == ("books", "book:1", "book:2")
    assert split_tags(None) == () and split_tags("*") == ()
    assert path_tag("/books") == path_tag("/books") != path_tag("/books/1")


def test_environ_headers_are_case_insensitive() -> None:
    environ = {"HTTP_IF_NONE_MATCH": '"a"', "CONTENT_TYPE": "text/plain", "wsgi.input": object()}
    headers = EnvironHeaders(environ)
    assert headers["if-none-match"] == '"a"' and headers.get("If-None-Match") == '"a"'
    assert headers.get("If-Match") is None and "Content-Type" in headers
    assert sorted(headers) == ["Content-Type", "If-None-Match"] and len(headers) == 2
    assert is_conditional(headers) and not is_conditional({"Accept": "*/*"})


def test_stored_validator_round_trip_and_refusals() -> None:
    undated = [(k, v) for k, v in HEADERS_200 if k != "Expires"]  # Expires is never stored (below)
    record = StoredValidator.from_response(
        200, [*undated, ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")], TAG
    )
    assert record is not None
    assert record.vary == ("accept",) and record.length == len(BODY) and record.last_modified == LM
    names = [k for k, _ in record.headers]
    assert "Date" not in names and "Set-Cookie" not in names and "Content-Type" not in names
    assert StoredValidator.from_value(record.to_value()) == record
    assert StoredValidator.from_value(json.loads(json.dumps(record.to_value()))) == record
    broken = record.to_value().replace("etagkit-validator-1", "etagkit-validator-0")
    for garbage in (
        None,
        b"x",
        {"e": None},
        [1],
        "",
        "x\x1f" * 5,
        broken,
        record.to_value()[:-3] + "\x1eoops",
    ):
        assert StoredValidator.from_value(garbage) is None
    assert StoredValidator.from_response(404, HEADERS_200, TAG) is None
    assert StoredValidator.from_response(200, [("Cache-Control", "no-store")], TAG) is None
    assert StoredValidator.from_response(200, [("Vary", "*")], TAG) is None
    assert StoredValidator.from_response(200, [], None) is None
    assert StoredValidator.from_response(200, [("Cache-Control", "a\x1fb")], TAG) is None
    expires = [("Expires", "Thu, 01 Jan 2026 00:00:00 GMT")]
    assert StoredValidator.from_response(200, expires, TAG) is None  # a 304 would replay it frozen
    assert CachedResponse.from_response(200, expires, b"x", TAG) is None


def test_cached_response_records() -> None:
    ok = CachedResponse.from_response(
        200, [("Content-Type", "text/plain"), ("Vary", "Accept"), ("ETag", '"old"')], b"hi", TAG
    )
    assert ok is not None and ok.vary == ("accept",)
    assert ok.headers == (("Content-Type", "text/plain"), ("Vary", "Accept"), ("ETag", str(TAG)))
    assert CachedResponse.from_value(ok.to_value()) == ok
    dated = CachedResponse.from_response(200, [], b"", last_modified=LM)
    assert dated is not None and dated.headers == (("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),)
    assert CachedResponse.from_response(200, [("Content-Type", "text/plain")], b"hi") is None  # no validator
    assert CachedResponse.from_response(200, [("Set-Cookie", "a=b")], b"") is None
    assert CachedResponse.from_response(200, [("Cache-Control", "private")], b"") is None
    assert CachedResponse.from_response(201, [], b"") is None
    assert CachedResponse.from_value({"s": 200, "h": [], "b": "not bytes"}) is None


# -- ValidatorStore over a real TagCache -----------------------------------------------------------


def _record(tag: str = "v1") -> StoredValidator:
    record = StoredValidator.from_response(200, [("Cache-Control", "no-cache")], ETag(tag), 10)
    assert record is not None
    return record


def test_store_lookup_and_invalidate() -> None:
    store = ValidatorStore(TagCache(timer=FakeClock()))
    key = representation_key("GET", "/books")
    ticket = store.begin(["books"])
    assert store.store(key, {}, _record(), ticket=ticket, tags=["books"])
    assert store.lookup(key, {}) == _record()
    store.invalidate("books")
    assert store.lookup(key, {}) is None


def test_an_invalidation_during_the_handler_wins() -> None:
    store = ValidatorStore(TagCache(timer=FakeClock()))
    key = representation_key("GET", "/books")
    ticket = store.begin(["books"])
    store.invalidate("books")  # a write lands while the handler computes
    assert not store.store(key, {}, _record(), ticket=ticket, tags=["books"])
    assert store.lookup(key, {}) is None


def test_varying_representations_are_stored_per_variant() -> None:
    store = ValidatorStore(TagCache(timer=FakeClock()))
    key = representation_key("GET", "/books")
    for accept, tag in (("application/json", "j"), ("text/html", "h")):
        record = StoredValidator.from_response(200, [("Vary", "Accept")], ETag(tag))
        assert record is not None
        assert store.store(key, {"Accept": accept}, record, ticket=store.begin(["t"]), tags=["t"])
    found = store.lookup(key, {"Accept": "application/json"})
    assert found is not None and found.etag == ETag("j")
    found = store.lookup(key, {"Accept": "text/html"})
    assert found is not None and found.etag == ETag("h")
    assert store.lookup(key, {"Accept": "image/png"}) is None


class CountingCache(TagCache):
    """A real TagCache that counts the writes reaching it."""

    def __init__(self, timer: FakeClock) -> None:
        super().__init__(timer=timer, default_ttl=60)
        self.writes = 0

    def set(self, key: str, value: Any, **kwargs: Any) -> bool:
        self.writes += 1
        return super().set(key, value, **kwargs)


def test_a_repeated_write_is_skipped_only_while_the_stored_entry_is_surely_there() -> None:
    clock = FakeClock()
    cache = CountingCache(clock)
    store = ValidatorStore(cache)
    key = representation_key("GET", "/books")

    def write(record: StoredValidator, tags: tuple[str, ...] = ("books",)) -> bool:
        return store.store(key, {}, record, ticket=store.begin(tags), tags=tags)

    assert write(_record()) and cache.writes == 1
    assert write(_record()) and cache.writes == 1  # same value, tags and clock: skipped
    assert write(_record(), ("books", "new")) and cache.writes == 2  # other tags: written
    assert write(_record("v2")) and cache.writes == 3  # another value: written
    store.invalidate("unrelated")  # the clock moved: the entry may be gone, write again
    assert write(_record("v2")) and cache.writes == 4
    clock.now += 31  # over half the TTL: refresh the entry before it expires
    assert write(_record("v2")) and cache.writes == 5
    assert write(_record("v2")) and cache.writes == 5
    cache.delete(key)  # evicted or deleted behind the store's back...
    assert store.lookup(key, {}) is None  # ...a lookup that misses forgets the skip
    assert write(_record("v2")) and cache.writes == 6
    assert store.lookup(key, {}) == _record("v2")


def test_an_unreachable_store_means_stateless_and_is_counted() -> None:
    from support import free_port

    from etagkit.cache.redis import RedisStore

    metrics = Metrics()
    dead = RedisStore(f"redis://127.0.0.1:{free_port()}/0", prefix="etagkit-test-dead:")
    store = ValidatorStore(TagCache(dead), metrics=metrics)
    key = representation_key("GET", "/books")
    assert store.lookup(key, {}) is None
    assert store.begin(["books"], "/books") is None
    assert not store.store(key, {}, _record(), ticket=None, tags=["books"])
    store.invalidate("books")  # never raises
    events = metrics.snapshot()
    assert "stateless_fallback" in json.dumps(events)


def test_the_direct_call_names_are_public() -> None:
    for name in ("check_preconditions", "conditional_response", "Reply", "Validator", "ValidatorStore"):
        assert name in etagkit.__all__
