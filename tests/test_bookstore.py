"""The bookstore example as a user runs it: ``python examples/bookstore.py`` (and its ASGI twin,
``examples/bookstore_asgi.py``) in a subprocess on a free loopback port, driven over real HTTP, once
with the in-process store and once with Redis (the same ``create_app`` code path). Input handling
is also fuzzed in-process through Flask's test client."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import free_port, serve_process

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "bookstore.py"
EXAMPLE_ASGI = ROOT / "examples" / "bookstore_asgi.py"
BOOK = {"title": "The Test Book", "author": "Tess Ting", "year": 2001}
# The example reads these from the environment; a test's server gets its settings from its flags only
# (an ETAGKIT_REDIS_URL meant for the test fixtures must not turn the "memory" variant into Redis).
CLEAN_ENV = dict.fromkeys(
    (
        "ETAGKIT_REDIS_URL",
        "BOOKSTORE_DB",
        "BOOKSTORE_BOOKS",
        "BOOKSTORE_REDIS_PREFIX",
        "BOOKSTORE_REDIS_TIMEOUT",
        "BOOKSTORE_METRICS_DIR",
        "BOOKSTORE_EARLY_304",
        "BOOKSTORE_TWO_LEVEL",
    ),
    "",
)
# Generous Redis timeouts against the shared test Redis: a busy machine must not turn slow answers
# into store errors (the example's default, 0.25 s, is for a production Redis).
GENEROUS = ["--redis-timeout", "5"]


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bookstore_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bookstore = _load_example()


# -- the server under test ---------------------------------------------------------------------------


def _delete_keys(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module", params=["wsgi-memory", "wsgi-redis", "asgi-memory", "asgi-redis"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example on a free port (default flags: in-memory SQLite, 1,000 books); its base URL. Both
    bookstores answer the same HTTP-level tests: the WSGI one (Flask on waitress) and the ASGI one
    (Starlette on uvicorn), each with the in-process store and with Redis."""
    port = free_port()
    face, store = request.param.split("-")
    argv = [sys.executable, str(EXAMPLE if face == "wsgi" else EXAMPLE_ASGI), "--port", str(port)]
    redis_url = prefix = None
    if store == "redis":
        redis_url = request.getfixturevalue("redis_url")
        prefix = f"etagkit-test:{uuid.uuid4().hex[:12]}:{{bookstore}}:"  # hash tag: keys keep the prefix
        argv += ["--redis", redis_url, "--redis-prefix", prefix, *GENEROUS]
    log = tmp_path_factory.mktemp("bookstore") / "server.log"
    try:
        with serve_process(argv, port, log=log, cwd=ROOT, env=CLEAN_ENV):
            base = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{base}/stats", timeout=10).json()["store"] == store
            yield base
    finally:
        if redis_url is not None and prefix is not None:
            _delete_keys(redis_url, prefix)


@pytest.fixture
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10) as client:
        yield client


def _stats(http: httpx.Client) -> dict[str, Any]:
    response = http.get("/stats")
    assert response.status_code == 200
    return dict(response.json())


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 JSON problem with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    return dict(body)


def _put(http: httpx.Client, book_id: int, book: dict[str, Any], if_match: str | None) -> httpx.Response:
    headers = {"If-Match": if_match} if if_match is not None else {}
    return http.put(f"/books/{book_id}", json=book, headers=headers)


# -- reads and revalidation --------------------------------------------------------------------------


def test_list_revalidation_is_a_304_from_the_stored_etag_without_a_query(http: httpx.Client) -> None:
    first = http.get("/books")
    assert first.status_code == 200
    books = first.json()
    assert len(books) >= 1000 - 5  # other tests delete a few
    etag = first.headers["etag"]
    assert etag.startswith('"')  # strong
    cache_control = first.headers["cache-control"]
    assert re.search(r"max-age=\d+", cache_control) and "must-revalidate" in cache_control

    # The validator is stored by the 200 or, at the latest, by the first revalidation; from then on
    # a revalidation is answered from it alone.
    assert http.get("/books", headers={"If-None-Match": etag}).status_code == 304
    before = _stats(http)
    again = http.get("/books", headers={"If-None-Match": etag})
    after = _stats(http)
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == cache_control
    assert "content-type" not in again.headers
    assert after["db_queries"] == before["db_queries"]  # answered without touching SQLite
    assert after["routes"]["/books"]["stored_304"] == before["routes"]["/books"]["stored_304"] + 1
    assert after["routes"]["/books"]["bytes_saved"] >= before["routes"]["/books"]["bytes_saved"] + len(
        first.content
    )

    other = http.get("/books", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.headers["etag"] == etag and other.content == first.content


def test_one_book_has_a_version_validator_and_404s_carry_none(http: httpx.Client) -> None:
    response = http.get("/books/1")
    assert response.status_code == 200
    book = response.json()
    assert {"id", "title", "author", "year", "updated_at"} <= set(book)
    assert book["id"] == 1
    etag = response.headers["etag"]
    assert not etag.startswith("W/")
    before = _stats(http)["db_queries"]
    revalidated = http.get("/books/1", headers={"If-None-Match": etag})
    assert revalidated.status_code == 304 and revalidated.content == b""
    assert _stats(http)["db_queries"] == before + 1  # the version lookup only, never the row

    for path in ("/books/987654", "/books/abc", "/books/-1", "/books/1.5", "/books/" + "9" * 30):
        missing = http.get(path)
        _problem(missing, 404)
        assert "etag" not in missing.headers, path


def test_authors_top_is_a_cached_computation_that_follows_writes(http: httpx.Client) -> None:
    first = http.get("/authors/top")
    assert first.status_code == 200 and "etag" in first.headers
    top = first.json()
    assert len(top) == 10 and top == sorted(top, key=lambda a: (-a["books"], a["author"]))
    before = _stats(http)["db_queries"]
    assert http.get("/authors/top").json() == top
    assert _stats(http)["db_queries"] == before  # served by the TagCache

    author = f"Zora {uuid.uuid4().hex[:6]}"
    for i in range(top[0]["books"] + 1):
        assert (
            http.post("/books", json={"title": f"Vol {i}", "author": author, "year": 1999}).status_code == 201
        )
    stale = http.get("/authors/top", headers={"If-None-Match": first.headers["etag"]})
    assert stale.status_code == 200
    assert stale.json()[0]["author"] == author


# -- writes and their preconditions ------------------------------------------------------------------


def test_put_needs_if_match_and_moves_the_book_and_list_etags(http: httpx.Client) -> None:
    list_etag = http.get("/books").headers["etag"]
    old = http.get("/books/11")
    old_etag = old.headers["etag"]
    changed = {"title": "A New Title", "author": old.json()["author"], "year": 1999}

    assert _problem(_put(http, 11, changed, None), 428)
    assert _problem(_put(http, 11, changed, '"stale"'), 412)
    assert _problem(_put(http, 11, changed, f"W/{old_etag}"), 412)  # If-Match compares strongly
    assert http.get("/books", headers={"If-None-Match": list_etag}).status_code == 304  # nothing written

    done = _put(http, 11, changed, old_etag)
    assert done.status_code == 200
    new_etag = done.headers["etag"]
    assert new_etag != old_etag
    assert done.json()["title"] == "A New Title" and done.json()["version"] == old.json()["version"] + 1

    now = http.get("/books/11")
    assert now.headers["etag"] == new_etag and now.json() == done.json()
    assert http.get("/books/11", headers={"If-None-Match": old_etag}).status_code == 200
    relisted = http.get("/books", headers={"If-None-Match": list_etag})
    assert relisted.status_code == 200
    assert relisted.headers["etag"] != list_etag
    assert next(b for b in relisted.json() if b["id"] == 11)["title"] == "A New Title"
    assert _problem(_put(http, 11, changed, old_etag), 412)  # the old ETag is stale now
    assert _put(http, 11, BOOK, "*").status_code == 200  # If-Match: * means "any current version"


def test_put_accepts_the_books_own_representation_back(http: httpx.Client) -> None:
    """Read-modify-write as REST clients, curl sessions and HTTP cache tests do it: GET the book,
    change a field, PUT the whole JSON back with its ETag. ``id`` must match the URL; ``version`` and
    ``updated_at`` are read-only and ignored (If-Match, not the body, names the version edited)."""
    got = http.get("/books/15")
    book, etag = got.json(), got.headers["etag"]
    list_etag = http.get("/books").headers["etag"]
    edited = {**book, "title": "Edited In Place"}
    assert set(edited) == {"id", "title", "author", "year", "version", "updated_at"}

    done = _put(http, 15, edited, etag)
    assert done.status_code == 200, done.text
    after = done.json()
    assert after["id"] == 15 and after["title"] == "Edited In Place"
    assert after["version"] == book["version"] + 1
    assert (after["author"], after["year"]) == (book["author"], book["year"])
    # written through: the old validators are stale everywhere, the new representation is served
    fresh = http.get("/books/15", headers={"If-None-Match": etag})
    assert (
        fresh.status_code == 200 and fresh.json() == after and fresh.headers["etag"] == done.headers["etag"]
    )
    relisted = http.get("/books", headers={"If-None-Match": list_etag})
    assert relisted.status_code == 200 and after in relisted.json()

    # the echoed server fields are now stale (the old version and time): ignored, If-Match decides
    current = done.headers["etag"]
    again = _put(http, 15, {**edited, "title": "Edited Twice"}, current)
    assert again.status_code == 200, again.text
    assert again.json()["version"] == after["version"] + 1 and again.json()["title"] == "Edited Twice"
    assert _problem(_put(http, 15, {**edited, "title": "Late"}, current), 412)  # If-Match is stale now

    current = again.headers["etag"]
    latest = again.json()
    refusals = [
        ({**latest, "id": 16}, {"id"}),  # another book's id: not this resource
        ({**latest, "id": "15"}, {"id"}),
        ({**latest, "isbn": "978-0"}, {"isbn"}),  # still no unknown fields
        ({**latest, "version": "3"}, {"version"}),  # read-only, but still typed
        ({**latest, "updated_at": 0}, {"updated_at"}),
    ]
    for body, fields in refusals:
        problem = _problem(_put(http, 15, body, current), 422)
        assert set(problem["fields"]) == fields, (body, problem)
    assert http.get("/books/15", headers={"If-None-Match": current}).status_code == 304  # nothing written
    # a POST creates: the server's fields are not the client's to give
    assert set(_problem(http.post("/books", json=latest), 422)["fields"]) == {"id", "version", "updated_at"}


def test_concurrent_writers_with_one_etag_make_exactly_one_change(http: httpx.Client, server: str) -> None:
    etag = http.get("/books/14").headers["etag"]

    def put(i: int) -> int:
        book = {"title": f"Writer {i}", "author": "Race", "year": 2000}
        with httpx.Client(base_url=server, timeout=10) as own:
            return _put(own, 14, book, etag).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(put, range(8)))
    assert sorted(statuses) == [200] + [412] * 7
    assert http.get("/books/14").json()["version"] == 2


def test_delete_needs_if_match_then_the_book_is_gone(http: httpx.Client) -> None:
    list_etag = http.get("/books").headers["etag"]
    etag = http.get("/books/12").headers["etag"]
    assert _problem(http.delete("/books/12"), 428)
    assert _problem(http.delete("/books/12", headers={"If-Match": '"nope"'}), 412)
    gone = http.delete("/books/12", headers={"If-Match": etag})
    assert gone.status_code == 204 and gone.content == b""
    _problem(http.get("/books/12"), 404)
    # a missing target: preconditions do not apply where the answer is 404 (RFC 9110 §13.2.1) ...
    assert _problem(http.delete("/books/12", headers={"If-Match": etag}), 404)
    assert _problem(http.delete("/books/12"), 404)  # ... and no 428 either
    assert _problem(_put(http, 12, BOOK, "*"), 412)  # a PUT could create it: If-Match: * fails
    relisted = http.get("/books", headers={"If-None-Match": list_etag})
    assert relisted.status_code == 200 and 12 not in {b["id"] for b in relisted.json()}


def test_post_creates_with_a_location_and_changes_the_list(http: httpx.Client) -> None:
    list_etag = http.get("/books").headers["etag"]
    created = http.post("/books", json=BOOK)
    assert created.status_code == 201
    book = created.json()
    assert book["id"] > 1000 and {k: book[k] for k in BOOK} == BOOK
    location = created.headers["location"]
    assert location.endswith(f"/books/{book['id']}")
    fetched = http.get(location)
    assert fetched.json() == book and fetched.headers["etag"] == created.headers["etag"]
    relisted = http.get("/books", headers={"If-None-Match": list_etag})
    assert relisted.status_code == 200 and book in relisted.json()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b'{"title": "x", ', 400, None),
        (b"", 400, None),
        (b"\xff\xfe", 400, None),
        (b'{"title": "x", "author": "y", "year": NaN}', 400, None),
        (b"[1, 2]", 422, None),
        (b'{"title": "x", "author": "y"}', 422, "year"),
        (b'{"title": "x", "author": "y", "year": "1999"}', 422, "year"),
        (b'{"title": "x", "author": "y", "year": true}', 422, "year"),
        (b'{"title": "", "author": "y", "year": 1}', 422, "title"),
        (b'{"title": 5, "author": "y", "year": 1}', 422, "title"),
        (b'{"title": "x", "author": "y", "year": 1, "isbn": "1"}', 422, "isbn"),
        (b'{"title": "x", "author": "y", "year": 1, "id": 7}', 422, "id"),
        (b'{"title": "x", "author": "y", "year": 1, "version": "2"}', 422, "version"),
        (b'{"title": "x", "author": "y", "year": 1, "updated_at": []}', 422, "updated_at"),
        (b'{"title": "\\ud800", "author": "y", "year": 1}', 422, "title"),
    ],
)
def test_bad_bodies_are_json_errors_and_write_nothing(
    http: httpx.Client, body: bytes, status: int, field: str | None
) -> None:
    etag = http.get("/books/13").headers["etag"]
    list_etag = http.get("/books").headers["etag"]
    headers = {"Content-Type": "application/json"}
    for response in (
        http.put("/books/13", content=body, headers={**headers, "If-Match": etag}),
        http.post("/books", content=body, headers=headers),
    ):
        problem = _problem(response, status)
        if field is not None:
            assert field in problem["fields"]
    assert http.get("/books/13", headers={"If-None-Match": etag}).status_code == 304
    assert http.get("/books", headers={"If-None-Match": list_etag}).status_code == 304


def test_a_body_over_the_limit_is_413(http: httpx.Client) -> None:
    huge = json.dumps({"title": "x" * 100_000, "author": "y", "year": 1})
    _problem(http.post("/books", content=huge, headers={"Content-Type": "application/json"}), 413)


# -- what the server reports -------------------------------------------------------------------------


def _ratio(metrics_text: str, route: str) -> float:
    match = re.search(
        rf'^etagkit_ratio_304_to_200\{{route="{re.escape(route)}"\}} (\S+)$', metrics_text, re.M
    )
    assert match, metrics_text
    return float(match.group(1))


def test_metrics_and_stats_show_revalidation_paying_off(http: httpx.Client, server: str) -> None:
    etag = http.get("/books").headers["etag"]
    before = _ratio(http.get("/metrics").text, "/books")
    for _ in range(3):
        assert http.get("/books", headers={"If-None-Match": etag}).status_code == 304
    metrics = http.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert _ratio(metrics.text, "/books") > before
    assert "etagkit_bytes_saved_total" in metrics.text and "etagkit_db_queries" in metrics.text

    stats = _stats(http)
    route = stats["routes"]["/books"]
    assert route["responses"]["304"] >= 3 and route["ratio_304_to_200"] > 0
    assert route["bytes_saved"] > 0 and stats["totals"]["bytes_saved"] >= route["bytes_saved"]
    assert {"ratio_304_to_200", "cache_hit_ratio", "events"} <= set(stats["totals"])
    assert "stale_served" in stats["cache"] and "store_errors" in stats["cache"]
    assert stats["breaker"] == ("closed" if stats["store"] == "redis" else None)
    assert _stats(http)["routes"]["/books"]["responses"]["304"] == route["responses"]["304"]


# -- the audit a user would run against it -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "flags"), [("/books", []), ("/books/4", ["--writes"]), ("/authors/top", [])]
)
def test_etagkit_check_passes_against_the_bookstore(server: str, path: str, flags: list[str]) -> None:
    script = Path(sys.executable).with_name("etagkit")  # the console script pip installed
    assert script.exists(), f"no etagkit console script next to {sys.executable}"
    argv = [str(script), "check", server + path, "--json", *flags]
    run = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["ok"] and report["summary"]["fail"] == 0 and report["summary"]["warn"] == 0, report


# -- flags: --books and --db (a file survives restarts, seeded once) ---------------------------------


def test_a_database_file_is_seeded_once_and_survives_restarts(tmp_path: Path) -> None:
    db = tmp_path / "books.db"
    port = free_port()
    argv = [sys.executable, str(EXAMPLE), "--port", str(port), "--db", str(db), "--books", "25"]
    with serve_process(argv, port, log=tmp_path / "1.log", cwd=ROOT, env=CLEAN_ENV):
        base = f"http://127.0.0.1:{port}"
        assert len(httpx.get(f"{base}/books").json()) == 25
        etag = httpx.get(f"{base}/books/3").headers["etag"]
        changed = httpx.put(f"{base}/books/3", json=BOOK, headers={"If-Match": etag})
        assert changed.status_code == 200
    port = free_port()
    argv[3] = str(port)
    with serve_process(argv, port, log=tmp_path / "2.log", cwd=ROOT, env=CLEAN_ENV):
        base = f"http://127.0.0.1:{port}"
        assert len(httpx.get(f"{base}/books").json()) == 25
        again = httpx.get(f"{base}/books/3", headers={"If-None-Match": changed.headers["etag"]})
        assert again.status_code == 304  # same data, same validator after a restart


@pytest.mark.redis
def test_a_dead_redis_never_fails_a_read_refuses_writes_and_shows_in_stats(
    private_redis: Any, tmp_path: Path
) -> None:
    port = free_port()
    argv = [sys.executable, str(EXAMPLE), "--port", str(port), "--books", "30", "--redis", private_redis.url]
    with serve_process([*argv, *GENEROUS], port, log=tmp_path / "server.log", cwd=ROOT, env=CLEAN_ENV):
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        with http:
            list_etag = http.get("/books").headers["etag"]
            book_etag = http.get("/books/2").headers["etag"]
            assert http.get("/books", headers={"If-None-Match": list_etag}).status_code == 304
            private_redis.stop()

            for _ in range(5):  # answered statelessly: the view runs and its body is hashed
                assert http.get("/books", headers={"If-None-Match": list_etag}).status_code == 304
            # a write whose invalidation cannot be recorded is refused before it runs (README: the
            # write guarantee): 503 + Retry-After, nothing written, so every validator still holds
            refused = _put(http, 2, BOOK, book_etag)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1", refused.text
            assert http.get("/books/2", headers={"If-None-Match": book_etag}).status_code == 304
            assert http.get("/books", headers={"If-None-Match": list_etag}).status_code == 304

            stats = _stats(http)
            assert stats["store"] == "redis"
            assert stats["cache"]["store_errors"] > 0 and stats["totals"]["events"]["store_error"] > 0
            assert stats["cache"]["breaker_opened"] >= 1 and stats["breaker"] in ("open", "half_open")
            assert "etagkit_breaker_state" in http.get("/metrics").text


@pytest.mark.parametrize("store", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_it_prints_its_url_logs_every_request_and_starts_quietly(
    request: pytest.FixtureRequest, tmp_path: Path, store: str
) -> None:
    """What a user sees in the terminal: the URL to open, one access-log line per request, and no
    warning on a normal first start (with Redis: a fresh, empty server of its own)."""
    port = free_port()
    argv = [sys.executable, str(EXAMPLE), "--port", str(port), "--books", "5"]
    if store == "redis":
        argv += ["--redis", request.getfixturevalue("private_redis").url, *GENEROUS]
    log = tmp_path / "server.log"
    with serve_process(argv, port, log=log, cwd=ROOT, env=CLEAN_ENV):
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            etag = http.get("/books/1").headers["etag"]
            assert http.get("/books/1", headers={"If-None-Match": etag}).status_code == 304
            assert http.get("/books/99?x=1").status_code == 404
    lines = log.read_text().splitlines()
    assert f"bookstore: serving on http://127.0.0.1:{port} (Ctrl-C to stop)" in lines, lines
    access = [line for line in lines if " - - [" in line]
    stamp = r"\[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\]"
    expected = [
        r'"GET /books/1 HTTP/1\.1" 200 \d+',
        r'"GET /books/1 HTTP/1\.1" 304 -',
        r'"GET /books/99\?x=1 HTTP/1\.1" 404 \d+',
    ]
    assert len(access) == len(expected), lines
    for line, pattern in zip(access, expected, strict=True):
        assert re.fullmatch(rf"127\.0\.0\.1 - - {stamp} {pattern}", line), line
    assert not [line for line in lines if "WARNING" in line or "Traceback" in line], lines


def test_seeding_is_deterministic() -> None:
    assert bookstore.seed_books(50) == bookstore.seed_books(50)
    assert bookstore.seed_books(50)[:10] == bookstore.seed_books(10)


# -- input from strangers, fuzzed in-process (the real app through Flask's test client) --------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
_bookish = st.fixed_dictionaries(
    {},
    optional={
        "title": st.one_of(st.text(max_size=600), st.integers()),
        "author": st.one_of(st.text(max_size=20), st.none()),
        "year": st.one_of(
            st.integers(),
            st.booleans(),
            st.text(max_size=4),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        "extra": _json,
    },
)


@pytest.fixture(scope="module")
def app_client() -> Any:
    with pytest.MonkeyPatch.context() as env:  # the in-process store, whatever the environment says
        for name in CLEAN_ENV:
            env.delenv(name, raising=False)
        app = bookstore.create_app(books=20)
    return app.test_client()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=200) | _json.map(lambda v: json.dumps(v).encode()),
    book_id=st.none() | st.integers(min_value=1, max_value=3),  # a POST, or a PUT to /books/<id>
)
def test_parse_book_only_ever_raises_invalid_book(body: bytes, book_id: int | None) -> None:
    try:
        title, author, year = bookstore.parse_book(body, book_id=book_id)
    except bookstore.InvalidBook as exc:
        assert exc.status in (400, 422)
    else:
        assert title and author and isinstance(year, int)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(book=_bookish)
def test_any_json_book_is_created_or_refused_never_a_500(app_client: Any, book: dict[str, Any]) -> None:
    before = len(app_client.get("/books").get_json())
    response = app_client.post("/books", data=json.dumps(book), content_type="application/json")
    after = len(app_client.get("/books").get_json())
    assert response.status_code in (201, 422), response.data
    assert after == before + (response.status_code == 201)
    if response.status_code == 201:
        created = response.get_json()
        assert app_client.get(response.headers["Location"]).get_json() == created


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=st.text(min_size=1, max_size=30))
def test_any_book_path_is_a_book_or_a_json_404(app_client: Any, segment: str) -> None:
    from urllib.parse import quote

    response = app_client.get("/books/" + quote(segment, safe=""))
    assert response.status_code in (200, 404, 308)
    if response.status_code == 404:
        assert "ETag" not in response.headers and response.get_json()["status"] == 404


def test_the_load_runs_fastest_variant_answers_before_flask_from_its_local_layer(
    redis_url: str, tmp_path: Path
) -> None:
    """``early_304`` + ``two_level`` (what ``run_load throughput`` measures as etagkit_early_local):
    a revalidation skips Flask's hooks (no X-Worker-Pid) and a write elsewhere still reaches it."""
    prefix = f"bookstore-test-{uuid.uuid4().hex[:8]}:"
    db = str(tmp_path / "books.db")  # one catalog, two apps (as two gunicorn workers)
    app = bookstore.create_app(
        db=db, redis_url=redis_url, redis_prefix=prefix, redis_timeout=5, early_304=True, two_level=True
    )
    other = bookstore.create_app(db=db, redis_url=redis_url, redis_prefix=prefix, redis_timeout=5)
    try:
        client, writer = app.test_client(), other.test_client()
        first = client.get("/books")
        tag = first.headers["ETag"]
        assert "X-Worker-Pid" in first.headers  # a 200 goes through Flask
        again = client.get("/books", headers={"If-None-Match": tag})
        assert again.status_code == 304 and "X-Worker-Pid" not in again.headers  # answered before Flask
        created = writer.post("/books", json=BOOK)  # through the other app: invalidates "books" in Redis
        assert created.status_code == 201
        deadline = time.monotonic() + 30
        while client.get("/books", headers={"If-None-Match": tag}).status_code == 304:
            assert time.monotonic() < deadline, "the invalidation never reached the local layer"
            time.sleep(0.05)
        assert client.get("/books").headers["ETag"] != tag
    finally:
        for each in (app, other):  # the two-level listener thread, the connections
            each.extensions["etagkit"].kit.cache.store.close()
        _delete_keys(redis_url, prefix)
