"""Private data and foreign hosts in the core (issue 13.2, 13.4): what counts as credentials, and which
Hosts may use stored validators (Django ALLOWED_HOSTS semantics)."""

from __future__ import annotations

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
