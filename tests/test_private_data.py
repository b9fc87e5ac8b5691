"""Private data and foreign hosts in the core (issue 13.2, 13.4): what counts as credentials, and which
Hosts may use stored validators (Django ALLOWED_HOSTS semantics)."""

from __future__ import annotations

from typing import Any

import pytest

from etagkit import ConfigurationError
from etagkit.core.headers import Fields, fields_of
from etagkit.core.hosts import AllowedHosts, host_allowed, host_name
from etagkit.core.keys import credential_field_names, shared_lookup_allowed

API_KEYS = credential_field_names(["X-API-Key", "x-auth-token"])


@pytest.mark.parametrize("shape", [dict, list, fields_of])
@pytest.mark.parametrize(
    ("headers", "remote_user", "shared"),
    [
        ({}, None, True),
        ({"Accept": "application/json"}, None, True),
        ({"Authorization": "Bearer x"}, None, False),
        ({"authorization": "Basic eA=="}, None, False),
        ({"Cookie": "s=1"}, None, False),
        ({"X-API-Key": "alice-key"}, None, False),
        ({"x-api-key": ""}, None, False),  # present at all counts
        ({"X-Auth-Token": "t"}, None, False),
        ({"X-Other": "t"}, None, True),
        ({}, "alice", False),  # REMOTE_USER: the server authenticated someone (mod_wsgi, a proxy)
        ({}, "", False),
    ],
)
def test_what_counts_as_credentials(
    shape: object, headers: dict[str, str], remote_user: str | None, shared: bool
) -> None:
    source = shape(headers.items()) if shape is not dict else dict(headers)  # type: ignore[operator]
    assert shared_lookup_allowed(source, None, credential_fields=API_KEYS, remote_user=remote_user) is shared
    # a declared scope keys the entry by user: then sharing the key space is safe
    assert shared_lookup_allowed(source, "user:alice", credential_fields=API_KEYS, remote_user=remote_user)


def test_the_old_call_still_works() -> None:
    assert shared_lookup_allowed({"X-API-Key": "k"}, None)  # no credential fields configured
    assert not shared_lookup_allowed(Fields(cookie="s=1"), None)
    assert not shared_lookup_allowed([("Authorization", "x")], None)


def test_credential_field_names_are_checked_at_configuration() -> None:
    assert credential_field_names(("X-API-Key",)) == frozenset({"x-api-key"})
    assert credential_field_names([]) == frozenset()
    with pytest.raises(ConfigurationError, match="not the string 'X-API-Key'"):
        credential_field_names("X-API-Key")
    with pytest.raises(ConfigurationError, match="'X API' is not a header field name"):
        credential_field_names(["X API"])
    with pytest.raises(ConfigurationError, match="None is not a header field name"):
        credential_field_names([None])  # type: ignore[list-item]


DJANGO_STYLE = AllowedHosts.of(["example.com", ".example.org", "LOCALHOST", "[::1]", "10.0.0.1"])


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("example.com", True),
        ("EXAMPLE.com:8080", True),
        ("example.com.", True),  # a fully qualified name
        ("http://example.com", True),  # an origin
        ("https://example.com:8443", True),
        ("www.example.com", False),  # exact names only
        ("example.org", True),  # a leading dot: the domain itself ...
        ("api.example.org:443", True),  # ... and every subdomain
        ("a.b.example.org", True),
        ("badexample.org", False),
        ("example.org.evil.test", False),
        ("localhost:8000", True),
        ("[::1]:8000", True),
        ("http://[::1]", True),
        ("[::2]", False),
        ("10.0.0.1:80", True),
        ("", False),
        ("example.com/evil", False),  # not a valid Host
        ("example.com:80:80", False),
        ("exa mple.com", False),
        ("example.com\r\n", False),
        ("user@example.com", False),
        ("e" * 300 + ".example.org", False),
    ],
)
def test_allowed_hosts(host: str, allowed: bool) -> None:
    assert DJANGO_STYLE.allows(host) is allowed
    assert host_allowed(host, ["example.com", ".example.org", "localhost", "[::1]", "10.0.0.1"]) is allowed


def test_a_star_allows_any_host_and_an_empty_setting_none() -> None:
    assert host_allowed("anything.test", ["*"])
    assert host_allowed("not a host", AllowedHosts.of(["*"]))
    assert not host_allowed("localhost", [])


def test_host_name() -> None:
    assert host_name("WWW.Example.COM.:8080") == "www.example.com"
    assert host_name("https://[::1]:8443") == "[::1]"
    assert host_name(".") is None


def test_allowed_hosts_setting_is_checked_at_configuration() -> None:
    with pytest.raises(ConfigurationError, match=r"not the string 'example\.com'"):
        AllowedHosts.of("example.com")
    with pytest.raises(ConfigurationError, match=r"'' is not a host name pattern"):
        AllowedHosts.of([""])
    with pytest.raises(ConfigurationError, match="3 is not a host name pattern"):
        AllowedHosts.of([3])  # type: ignore[list-item]


# -- through the faces: alice and bob never share an answer; unknown hosts leave nothing behind ----


def _inbox_app() -> tuple[Any, list[str]]:
    """A Flask inbox whose answer depends on who asks (REMOTE_USER, or an API key)."""
    from flask import Flask, request

    from etagkit.cache import TagCache
    from etagkit.flask import ETagKit

    app = Flask(__name__)
    app.config["ETAGKIT_CREDENTIAL_HEADERS"] = ["X-API-Key"]
    kit = ETagKit(app, cache=TagCache())
    served: list[str] = []

    @app.get("/inbox")
    @kit.cached(ttl=60, tags=["inbox"])
    def inbox() -> Any:
        user = request.environ.get("REMOTE_USER") or request.headers.get("X-API-Key") or "anonymous"
        served.append(user)
        return {"inbox of": user}

    return app, served


@pytest.mark.parametrize("who", ["REMOTE_USER", "X-API-Key"])
def test_cached_responses_are_never_shared_between_users(who: str) -> None:
    app, served = _inbox_app()
    client = app.test_client()

    def ask(user: str) -> Any:
        if who == "REMOTE_USER":
            return client.get("/inbox", environ_base={"REMOTE_USER": user})
        return client.get("/inbox", headers={"X-API-Key": user})

    assert ask("alice").get_json() == {"inbox of": "alice"}
    assert ask("bob").get_json() == {"inbox of": "bob"}  # not alice's cached inbox
    alice_tag = ask("alice").headers["ETag"]
    revalidated = client.get(
        "/inbox",
        headers={"If-None-Match": alice_tag, **({} if who == "REMOTE_USER" else {"X-API-Key": "bob"})},
        environ_base={"REMOTE_USER": "bob"} if who == "REMOTE_USER" else {},
    )
    assert revalidated.status_code == 200 and revalidated.get_json() == {"inbox of": "bob"}
    assert served == ["alice", "bob", "alice", "bob"]  # every credentialed request ran the view


def test_requests_for_hosts_not_allowed_store_nothing_and_create_no_marks() -> None:
    from werkzeug.test import Client

    from etagkit.cache import MemoryStore, TagCache
    from etagkit.wsgi import ETagMiddleware

    store = MemoryStore()
    cache = TagCache(store)
    calls: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ["REQUEST_METHOD"])
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2"), ("Cache-Tag", "t")]
        )
        return [b"hi"]

    client = Client(ETagMiddleware(app, cache=cache, allowed_hosts=["shop.example", ".cdn.example"]))
    cache.invalidate_tags("t")
    before = store.stats()
    for host in (f"random-{i}.attacker.example" for i in range(50)):
        tag = client.get("/x", headers={"Host": host}).headers["ETag"]  # still tagged, statelessly
        assert client.get("/x", headers={"Host": host, "If-None-Match": tag}).status_code == 304
        client.put("/x", headers={"Host": host})  # a write for an unknown host marks nothing
    assert store.stats()["entries"] == before["entries"]
    assert store.stats().get("marks", 0) == before.get("marks", 0)
    assert len(calls) == 150  # every request ran the app: nothing was answered from the store
    tag = client.get("/x", headers={"Host": "img.cdn.example"}).headers["ETag"]
    calls.clear()
    assert client.get("/x", headers={"Host": "img.cdn.example", "If-None-Match": tag}).status_code == 304
    assert calls == []  # an allowed host: answered from its stored validator
