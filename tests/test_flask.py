"""ETagKit, the Flask extension: extension-guide behaviour, decorators, stored ETags, writes."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etagkit import CacheControl, ConfigurationError, ETag, etag_from_version, format_http_date, generate_etag
from etagkit.cache import TagCache
from etagkit.flask import ETagKit
from etagkit.metrics import Metrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Shop:
    """A tiny catalog with a version per book, and a call counter per view."""

    def __init__(self) -> None:
        self.books: dict[int, dict[str, Any]] = {1: {"id": 1, "title": "Dune", "version": 1}}
        self.calls: Counter[str] = Counter()


def make_app(kit: ETagKit, shop: Shop, **config: Any) -> Flask:
    """An app factory: the kit is created once, ``init_app`` per app."""
    app = Flask(__name__)
    app.config.update(config)
    kit.init_app(app)

    @app.get("/books")
    @kit.conditional(tags=["books"], cache_control="no-cache")
    def books() -> Any:
        shop.calls["books"] += 1
        return {"books": sorted(shop.books)}

    @app.route("/books/<int:book_id>", methods=["GET", "PUT", "DELETE"])
    @kit.conditional(
        etag=lambda book_id: shop.books[book_id]["version"] if book_id in shop.books else None,
        tags=["books", "book:{book_id}", lambda book_id: [f"author-of:{book_id}"]],
        require_precondition=True,
    )
    def book(book_id: int) -> Any:
        shop.calls["book"] += 1
        if request.method == "PUT":
            shop.books[book_id]["version"] += 1
            return {"ok": True}
        if request.method == "DELETE":
            shop.books.pop(book_id, None)
            return "", 204
        if book_id not in shop.books:
            return {"error": "not found"}, 404
        return shop.books[book_id]

    @app.get("/covers/<int:book_id>")
    @kit.cached(ttl=60, tags=["book:{book_id}"])
    def cover(book_id: int) -> Any:
        shop.calls["cover"] += 1
        return f"cover of {book_id}"

    @app.get("/me")
    @kit.conditional(tags=["me"], scope=lambda: request.headers.get("Authorization"))
    def me() -> Any:
        shop.calls["me"] += 1
        return {"user": request.headers.get("Authorization")}

    @app.get("/news")
    @kit.conditional(last_modified=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    def news() -> Any:
        shop.calls["news"] += 1
        return "news"

    return app


@pytest.fixture
def shop() -> Shop:
    return Shop()


@pytest.fixture
def cache() -> TagCache:
    return TagCache(timer=FakeClock())


@pytest.fixture
def kit(cache: TagCache) -> ETagKit:
    return ETagKit(cache=cache, metrics=Metrics())


def _revalidated(client: Any, path: str, **headers: str) -> str:
    """GET ``path`` (the 200 stores the validator), then revalidate once (a stored 304)."""
    tag = client.get(path, headers=headers).headers["ETag"]
    assert client.get(path, headers={**headers, "If-None-Match": tag}).status_code == 304
    return str(tag)


# -- the extension guide ----------------------------------------------------------------------------


def test_init_app_state_config_and_several_apps(kit: ETagKit, shop: Shop) -> None:
    one = make_app(kit, shop, ETAGKIT_WEAK=True)
    two = make_app(kit, shop)
    assert not hasattr(kit, "app")
    assert one.extensions["etagkit"] is not two.extensions["etagkit"]
    assert one.config["ETAGKIT_WEAK"] is True and two.config["ETAGKIT_WEAK"] is False
    assert two.config["ETAGKIT_MAX_BUFFER"] == 1 << 20
    weak = one.test_client().get("/books").headers["ETag"]
    strong = two.test_client().get("/books").headers["ETag"]
    assert weak.startswith("W/") and not strong.startswith("W/")


def test_eager_registration_works_too(cache: TagCache) -> None:
    app = Flask(__name__)
    kit = ETagKit(app, cache=cache)

    @app.get("/")
    @kit.conditional()
    def index() -> str:
        return "hi"

    assert app.test_client().get("/").headers["ETag"] == str(generate_etag(b"hi"))


@pytest.mark.parametrize(
    "config",
    [
        {"ETAGKIT_WEAK": "yes"},
        {"ETAGKIT_MAX_BUFFER": -5},
        {"ETAGKIT_JSON_ERRORS": "maybe"},
        {"ETAGKIT_TTL": 0},
        {"ETAGKIT_AUTO_INVALIDATE": 1},
    ],
)
def test_misconfiguration_raises_at_init_app(config: dict[str, Any]) -> None:
    app = Flask(__name__)
    app.config.update(config)
    with pytest.raises(ConfigurationError):
        ETagKit().init_app(app)


def test_other_mistakes_raise_early(kit: ETagKit) -> None:
    app = Flask(__name__)
    kit.init_app(app)
    with pytest.raises(ConfigurationError, match="already registered"):
        kit.init_app(app)
    with pytest.raises(ConfigurationError):
        ETagKit(cache=object())
    with pytest.raises(ConfigurationError, match="not arguments of"):

        @kit.conditional(tags=["book:{bookid}"])
        def view(book_id: int) -> str:
            return ""

    with pytest.raises(ConfigurationError):
        kit.cached(ttl=0)


def test_a_cached_view_without_a_cache_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="needs"):
        ETagKit().cached(ttl=5)
    with pytest.raises(ConfigurationError, match="needs"):
        ETagKit().conditional(stored=True)
    ETagKit().conditional(stored=False)  # fine: nothing to store anyway


@pytest.mark.parametrize(
    "options",
    [
        {"scope": "user"},
        {"etag": 5},
        {"last_modified": "yesterday"},
        {"require_precondition": "yes"},
        {"auto_invalidate": 1},
        {"stored": "no"},
        {"cache_control": 60},
        {"cache_control": ""},
        {"cache_control": "max-age=60\r\nSet-Cookie: a=b"},
        {"cache_control": "no-cache, =oops"},
    ],
)
def test_decorator_mistakes_raise_at_decoration(kit: ETagKit, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        kit.conditional(**options)
    if "stored" not in options:
        with pytest.raises(ConfigurationError):
            kit.cached(ttl=5, **options)


def test_cache_control_takes_a_cache_control_or_its_directives() -> None:
    app = Flask(__name__)
    kit = ETagKit(app)
    directives = 'max-age=60, private="set-cookie", no-transform'
    app.add_url_rule("/a", "a", kit.conditional(cache_control=CacheControl(max_age=5))(lambda: "a"))
    app.add_url_rule("/b", "b", kit.conditional(cache_control=directives)(lambda: "b"))
    client = app.test_client()
    assert client.get("/a").headers["Cache-Control"] == "max-age=5"
    assert client.get("/b").headers["Cache-Control"] == directives  # a valid string goes out as given


# -- GET: content ETags, stored ETags, cheap validators ---------------------------------------------


def test_content_etag_and_stored_etag_skip_the_view(kit: ETagKit, shop: Shop) -> None:
    client = make_app(kit, shop).test_client()
    first = client.get("/books")
    tag = first.headers["ETag"]
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-cache"
    assert tag == str(generate_etag(first.data))
    again = client.get("/books", headers={"If-None-Match": tag})  # the 200 stored the validator
    assert again.status_code == 304 and shop.calls["books"] == 1  # the view did not run
    assert dict(again.headers) == {"Cache-Control": "no-cache", "ETag": tag}
    assert client.head("/books", headers={"If-None-Match": tag}).status_code == 304
    assert shop.calls["books"] == 1
    kit.invalidate("books")
    assert client.get("/books", headers={"If-None-Match": tag}).status_code == 304
    assert shop.calls["books"] == 2  # ran again after the invalidation (and stored it again)
    assert client.get("/books", headers={"If-None-Match": tag}).status_code == 304
    assert shop.calls["books"] == 2


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_200_stores_the_validator_so_the_first_revalidation_skips_the_view(
    kit: ETagKit, shop: Shop, cache: TagCache, method: str
) -> None:
    client = make_app(kit, shop).test_client()
    tag = client.open("/books", method=method).headers["ETag"]
    assert shop.calls["books"] == 1 and cache.stats()["misses"] == 0  # stored, never looked up
    for revalidating in ("GET", "HEAD"):
        assert client.open("/books", method=revalidating, headers={"If-None-Match": tag}).status_code == 304
    assert shop.calls["books"] == 1


def test_invalidate_works_inside_and_outside_an_app_context(kit: ETagKit, shop: Shop) -> None:
    app = make_app(kit, shop)
    client = app.test_client()
    tag = client.get("/books").headers["ETag"]
    with app.app_context():
        kit.invalidate("books")
    client.get("/books", headers={"If-None-Match": tag})
    assert shop.calls["books"] == 2
    kit.invalidate("books")
    client.get("/books", headers={"If-None-Match": tag})
    assert shop.calls["books"] == 3


def test_the_cheap_validator_runs_before_the_view(kit: ETagKit, shop: Shop) -> None:
    client = make_app(kit, shop).test_client()
    first = client.get("/books/1")
    expected = etag_from_version(1)
    assert first.headers["ETag"] == str(expected) and shop.calls["book"] == 1
    hit = client.get("/books/1", headers={"If-None-Match": str(expected)})
    assert hit.status_code == 304 and shop.calls["book"] == 1
    assert "Content-Type" not in hit.headers and "Content-Length" not in hit.headers
    news = client.get("/news", headers={"If-Modified-Since": "Tue, 02 Jan 2024 00:00:00 GMT"})
    assert news.status_code == 304 and shop.calls["news"] == 0
    assert client.get("/news").headers["Last-Modified"] == "Mon, 01 Jan 2024 00:00:00 GMT"


def test_missing_resources_pass_through(kit: ETagKit, shop: Shop) -> None:
    client = make_app(kit, shop).test_client()
    missing = client.get("/books/9", headers={"If-None-Match": "*"})
    assert missing.status_code == 404 and "ETag" not in missing.headers


def test_response_caching_serves_the_whole_response(kit: ETagKit, shop: Shop) -> None:
    client = make_app(kit, shop).test_client()
    first = client.get("/covers/1")
    second = client.get("/covers/1")
    assert second.status_code == 200 and second.data == b"cover of 1" and shop.calls["cover"] == 1
    assert second.headers["ETag"] == first.headers["ETag"] == str(generate_etag(b"cover of 1"))
    assert client.get("/covers/1", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert shop.calls["cover"] == 1
    kit.invalidate("book:1")
    assert client.get("/covers/1").status_code == 200 and shop.calls["cover"] == 2


def test_cached_responses_and_path_tags_are_per_host(cache: TagCache) -> None:
    app = Flask(__name__)
    kit = ETagKit(app, cache=cache)
    calls: Counter[str] = Counter()

    @app.route("/home", methods=["GET", "POST"])
    @kit.cached(ttl=60)
    def home() -> Any:
        calls[request.host] += 1
        return f"welcome to {request.host}"

    client = app.test_client()
    for host in ("tenant-a.example", "tenant-b.example", "tenant-a.example", "tenant-b.example"):
        got = client.get("/home", base_url=f"http://{host}")
        assert got.get_data(as_text=True) == f"welcome to {host}"
    assert calls == {"tenant-a.example": 1, "tenant-b.example": 1}
    # https is another origin: its own entry
    assert client.get("/home", base_url="https://tenant-a.example").status_code == 200
    assert calls["tenant-a.example"] == 2
    client.post("/home", base_url="http://tenant-a.example")  # invalidates tenant-a's /home only
    client.get("/home", base_url="http://tenant-b.example")
    client.get("/home", base_url="http://tenant-a.example")
    assert calls == {"tenant-a.example": 4, "tenant-b.example": 1}


def test_a_response_with_expires_is_never_replayed_from_the_cache(cache: TagCache) -> None:
    app = Flask(__name__)
    kit = ETagKit(app, cache=cache)
    calls: list[int] = []

    @app.get("/dated")
    @kit.cached(ttl=60)
    def dated() -> Any:
        calls.append(1)
        return "same body", 200, {"Expires": format_http_date(1_800_000_000 + 3600 * len(calls))}

    client = app.test_client()
    for n in (1, 2, 3):
        got = client.get("/dated")
        assert got.headers["Expires"] == format_http_date(1_800_000_000 + 3600 * n) and len(calls) == n
        tag = got.headers["ETag"]
    assert client.get("/dated", headers={"If-None-Match": tag}).headers["Expires"] == format_http_date(
        1_800_000_000 + 3600 * 4
    )


def test_a_write_committed_at_teardown_leaves_no_stale_validator(cache: TagCache) -> None:
    app = Flask(__name__)
    kit = ETagKit(app, cache=cache)
    db = {"doc": "old"}
    pending: dict[str, str] = {}
    client = app.test_client()
    window: list[int] = []

    @app.route("/doc", methods=["GET", "PUT"])
    @kit.conditional()
    def doc() -> Any:
        if request.method == "PUT":
            pending["doc"] = "new"  # committed at teardown, after the view's invalidation
            return "saved"
        return db["doc"]

    @app.teardown_request
    def commit(exc: BaseException | None) -> None:
        if pending:
            writes = dict(pending)
            pending.clear()
            # a read in the window between the invalidation and the commit stores the old validator
            window.append(client.get("/doc", headers={"If-None-Match": old}).status_code)
            db.update(writes)

    old = _revalidated(client, "/doc")
    assert client.put("/doc", buffered=True).status_code == 200 and window == [304]
    fresh = client.get("/doc", headers={"If-None-Match": old})
    assert fresh.status_code == 200 and fresh.data == b"new"


def test_a_cached_view_with_a_cheap_validator_checks_it_first_and_caches_per_version(
    cache: TagCache,
) -> None:
    app = Flask(__name__)
    kit = ETagKit(app, cache=cache)
    current = {"version": 1}
    calls: list[int] = []

    @app.get("/doc")
    @kit.cached(ttl=60, etag=lambda: current["version"], tags=["doc"])
    def doc() -> str:
        calls.append(current["version"])
        return f"doc v{current['version']}"

    client = app.test_client()
    v1, v2 = str(etag_from_version(1)), str(etag_from_version(2))
    first = client.get("/doc")
    assert (first.status_code, first.data, first.headers["ETag"]) == (200, b"doc v1", v1)
    cached = client.get("/doc")
    assert (cached.data, cached.headers["ETag"], calls) == (b"doc v1", v1, [1])  # from the cache
    assert client.get("/doc", headers={"If-None-Match": v1}).status_code == 304 and calls == [1]
    current["version"] = 2  # a write elsewhere, its tags NOT invalidated: the version alone decides
    for _ in range(2):
        fresh = client.get("/doc", headers={"If-None-Match": v1})
        assert (fresh.status_code, fresh.data, fresh.headers["ETag"]) == (200, b"doc v2", v2)
    assert calls == [1, 2]  # the v1 response was never served for v2; v2 was cached once rendered
    assert client.get("/doc", headers={"If-None-Match": v2}).status_code == 304 and calls == [1, 2]


def test_credentialed_requests_need_a_scope(kit: ETagKit, shop: Shop) -> None:
    client = make_app(kit, shop).test_client(use_cookies=False)  # send the Cookie header as given
    tag = client.get("/books").headers["ETag"]
    client.get("/books", headers={"If-None-Match": tag, "Cookie": "s=1"})
    assert shop.calls["books"] == 2  # not answered from the shared stored validator
    alice = {"Authorization": "Bearer alice"}
    own = _revalidated(client, "/me", **alice)
    assert client.get("/me", headers={**alice, "If-None-Match": own}).status_code == 304
    assert shop.calls["me"] == 1
    bob = client.get("/me", headers={"Authorization": "Bearer bob", "If-None-Match": own})
    assert bob.status_code == 200 and shop.calls["me"] == 2


# -- writes -----------------------------------------------------------------------------------------


def test_stale_if_match_is_412_and_missing_precondition_428_without_running_the_view(
    kit: ETagKit, shop: Shop
) -> None:
    client = make_app(kit, shop).test_client()
    tag = client.get("/books/1").headers["ETag"]
    calls = shop.calls["book"]
    assert client.put("/books/1", json={}).status_code == 428
    stale = client.put("/books/1", json={}, headers={"If-Match": '"old"'})
    assert stale.status_code == 412 and stale.json is not None and stale.json["status"] == 412
    assert shop.calls["book"] == calls
    ok = client.put("/books/1", json={}, headers={"If-Match": tag})
    assert ok.status_code == 200 and shop.calls["book"] == calls + 1
    assert client.put("/books/1", json={}, headers={"If-Match": tag}).status_code == 412  # lost update
    gone = client.delete("/books/1", headers={"If-Match": str(etag_from_version(2))})
    assert gone.status_code == 204
    assert client.put("/books/1", json={}, headers={"If-Match": "*"}).status_code == 412


def test_a_write_view_gets_the_checked_validator_for_a_conditional_update(cache: TagCache) -> None:
    app = Flask(__name__)
    kit = ETagKit(app, cache=cache)
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT, version INTEGER)")
    db.execute("INSERT INTO books VALUES (1, 'Dune', 1)")
    racing_writer: list[str] = []

    def version(book_id: int) -> int | None:
        row = db.execute("SELECT version FROM books WHERE id = ?", (book_id,)).fetchone()
        return None if row is None else int(row[0])

    @app.put("/books/<int:book_id>")
    @kit.conditional(etag=version, require_precondition=True)
    def replace(book_id: int) -> Any:
        checked = kit.checked_validator()
        assert checked is not None and checked.validator.etag == etag_from_version(checked.version)
        for title in racing_writer:  # another request commits after our If-Match check
            db.execute("UPDATE books SET title = ?, version = version + 1 WHERE id = ?", (title, book_id))
        updated = db.execute(
            "UPDATE books SET title = ?, version = version + 1 WHERE id = ? AND version = ?",
            (request.get_json()["title"], book_id, checked.version),
        )
        return ({"ok": True}, 200) if updated.rowcount == 1 else ({"error": "changed"}, 412)

    @app.get("/plain")
    @kit.conditional()
    def plain() -> str:
        return repr(kit.checked_validator())

    client = app.test_client()
    v1 = str(etag_from_version(1))
    assert client.put("/books/1", json={"title": "Emma"}, headers={"If-Match": v1}).status_code == 200
    racing_writer.append("Persuasion")
    v2 = str(etag_from_version(2))
    lost = client.put("/books/1", json={"title": "Mine"}, headers={"If-Match": v2})
    assert lost.status_code == 412  # the check passed, but the conditional UPDATE saw the race
    assert db.execute("SELECT title, version FROM books").fetchone() == ("Persuasion", 3)
    assert client.get("/plain").data == b"None" and ETagKit.checked_validator() is None


def test_a_successful_write_invalidates_the_views_tags(kit: ETagKit, shop: Shop) -> None:
    client = make_app(kit, shop).test_client()
    listing = client.get("/books").headers["ETag"]
    cover = client.get("/covers/1").headers["ETag"]
    client.put("/books/1", headers={"If-Match": str(etag_from_version(1))})
    client.get("/books", headers={"If-None-Match": listing})
    client.get("/covers/1", headers={"If-None-Match": cover})
    assert shop.calls["books"] == 2 and shop.calls["cover"] == 2


def test_auto_invalidation_can_be_turned_off(kit: ETagKit, shop: Shop) -> None:
    client = make_app(kit, shop, ETAGKIT_AUTO_INVALIDATE=False).test_client()
    listing = _revalidated(client, "/books")
    client.put("/books/1", headers={"If-Match": str(etag_from_version(1))})
    client.get("/books", headers={"If-None-Match": listing})
    assert shop.calls["books"] == 1  # only /books/1's path and its own tags were invalidated


def test_app_wide_428(cache: TagCache) -> None:
    app = Flask(__name__)
    app.config["ETAGKIT_REQUIRE_PRECONDITION"] = True
    app.config["ETAGKIT_JSON_ERRORS"] = False
    kit = ETagKit(app, cache=cache)

    @app.put("/things/1")
    @kit.conditional()
    def create() -> tuple[str, int]:
        return "made", 201

    refused = app.test_client().put("/things/1")
    assert refused.status_code == 428 and refused.data.startswith(b"428")
    assert app.test_client().put("/things/1", headers={"If-None-Match": "*"}).status_code == 201
    assert app.test_client().post("/things/1").status_code == 405  # routing answers first


def test_metrics_per_route(cache: TagCache, shop: Shop) -> None:
    metrics = Metrics()
    client = make_app(ETagKit(cache=cache, metrics=metrics), shop).test_client()
    tag = _revalidated(client, "/books")
    client.get("/books", headers={"If-None-Match": tag})
    client.put("/books/1")
    counts = metrics.counts()
    assert counts[("responses", "/books", "200")] == 1
    assert counts[("responses", "/books", "304")] == 2
    assert counts[("bytes_saved", "/books", "")] == 2 * len(client.get("/books").data)
    assert counts[("stored_304", "/books", "")] == 2
    assert counts[("responses", "/books/<int:book_id>", "428")] == 1


@pytest.mark.parametrize("shared", [True, False], ids=["cache-shares-metrics", "kit-only"])
def test_a_cached_hit_is_counted_once(shared: bool) -> None:
    metrics = Metrics()
    app = Flask(__name__)
    kit = ETagKit(app, cache=TagCache(metrics=metrics if shared else None), metrics=metrics)

    @app.get("/c")
    @kit.cached(ttl=60)
    def c() -> str:
        return "x"

    client = app.test_client()
    client.get("/c")
    metrics.reset()
    assert client.get("/c").data == b"x"
    assert metrics.snapshot()["totals"]["events"] == {"cache_hit": 1}


def test_the_views_own_etag_wins_over_the_cheap_validators() -> None:
    app = Flask(__name__)
    kit = ETagKit(app)

    @app.get("/own")
    @kit.conditional(etag=lambda: 1, last_modified=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    def own() -> Any:
        return "x", 200, {"ETag": '"view-made"', "Last-Modified": "Tue, 02 Jan 2024 00:00:00 GMT"}

    got = app.test_client().get("/own")
    assert got.headers["ETag"] == '"view-made"'
    assert got.headers["Last-Modified"] == "Tue, 02 Jan 2024 00:00:00 GMT"
    assert app.test_client().get("/own", headers={"If-None-Match": '"view-made"'}).status_code == 304


def test_version_values_of_several_shapes() -> None:
    app = Flask(__name__)
    kit = ETagKit(app)
    when = datetime(2024, 1, 1, tzinfo=UTC)

    @app.get("/a")
    @kit.conditional(etag=lambda: ETag("x"))
    def a() -> str:
        return "a"

    @app.get("/b")
    @kit.conditional(etag=lambda: '"y"')
    def b() -> str:
        return "b"

    @app.get("/c")
    @kit.conditional(etag=lambda: (3, when))
    def c() -> str:
        return "c"

    client = app.test_client()
    assert client.get("/a").headers["ETag"] == '"x"'
    assert client.get("/b").headers["ETag"] == '"y"'
    assert client.get("/c").headers["ETag"] == str(etag_from_version(3, when))


def test_an_invalidation_while_the_view_runs_is_never_lost(cache: TagCache) -> None:
    app = Flask(__name__)
    kit = ETagKit(app, cache=cache)
    calls: list[int] = []

    @app.get("/books")
    @kit.conditional(tags=["books"])
    def books() -> str:
        calls.append(1)
        kit.invalidate("books")  # a write lands while this (now stale) body is rendered
        return "old catalog"

    client = app.test_client()
    tag = client.get("/books").headers["ETag"]
    for _ in range(3):
        assert client.get("/books", headers={"If-None-Match": tag}).status_code == 304
    assert len(calls) == 4  # never answered from a validator stored across an invalidation


_FIELDS = ["If-None-Match", "If-Match", "If-Modified-Since", "If-Unmodified-Since", "Accept", "Authorization"]
_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE"]),
    headers=st.dictionaries(
        st.sampled_from(_FIELDS), st.one_of(_TEXT, st.sampled_from(["*", '"a"'])), max_size=4
    ),
)
def test_fuzzed_request_headers_never_break_a_view(method: str, headers: dict[str, str]) -> None:
    shop = Shop()
    client = make_app(ETagKit(cache=TagCache(timer=FakeClock())), shop).test_client(use_cookies=False)
    got = client.open("/books/1", method=method, headers={k: v.strip() for k, v in headers.items()})
    assert got.status_code in (200, 204, 304, 412, 428)


def test_early_304_answers_stored_revalidations_before_flask_dispatches() -> None:
    from etagkit.metrics import Metrics

    app = Flask(__name__)
    app.config["ETAGKIT_EARLY_304"] = True
    cache, metrics = TagCache(), Metrics()
    cache.invalidate_tags("books")  # a known tag: the first 200 stores its validator
    ETagKit(app, cache=cache, metrics=metrics)
    kit = app.extensions["etagkit"].kit
    hooks, views = [], []
    app.before_request(lambda: hooks.append(1))

    @app.get("/books")
    @kit.conditional(tags=["books"])
    def books() -> Any:
        views.append(1)
        return {"books": ["Dune"]}

    client = app.test_client()
    tag = client.get("/books").headers["ETag"]
    assert (len(hooks), len(views)) == (1, 1)
    early = client.get("/books", headers={"If-None-Match": tag})
    assert early.status_code == 304 and early.headers["ETag"] == tag and early.data == b""
    assert (len(hooks), len(views)) == (1, 1)  # neither the hook nor the view ran
    assert metrics.snapshot()["routes"]["/books"]["stored_304"] == 1  # counted under its rule
    # credentialed requests, misses and other methods go to Flask as before
    assert (
        client.get("/books", headers={"If-None-Match": tag, "Authorization": "Bearer a"}).status_code == 304
    )
    assert client.get("/books", headers={"If-None-Match": '"other"'}).status_code == 200
    assert len(hooks) == 3
    kit.invalidate("books")
    assert client.get("/books", headers={"If-None-Match": tag}).status_code == 304
    assert len(hooks) == 4  # the record was invalidated: Flask answered (from a fresh view run)


def test_early_304_is_off_by_default() -> None:
    app = Flask(__name__)
    ETagKit(app, cache=TagCache())
    assert app.wsgi_app.__class__.__name__ != "EarlyRevalidation"
