"""Field syntax checks (RFC 9110 §5.1, §5.5, §5.6.2) used on stored data before a server sends it."""

from __future__ import annotations

import pytest

from etagkit.core.headers import is_token, valid_field


@pytest.mark.parametrize("name", ["ETag", "x-api-key", "A1!#$%&'*+-.^_`|~"])
def test_tokens(name: str) -> None:
    assert is_token(name)


@pytest.mark.parametrize("name", ["", "a b", "a:b", "a\r", "é", 'a"', "a,b", None, 1, b"ETag"])
def test_not_tokens(name: object) -> None:
    assert not is_token(name)


@pytest.mark.parametrize("value", ["", "no-cache", 'W/"x", "y"', "a\tb", "caf\xe9", "~!"])
def test_sendable_values(value: str) -> None:
    assert valid_field("X", value)


@pytest.mark.parametrize(
    "value", ["a\r\nb", "a\nb", "a\rb", "\x00", "\x7f", "\x1f", "\u0100", "😀", None, b"x"]
)
def test_values_a_server_cannot_send(value: object) -> None:
    assert not valid_field("X", value)


def test_a_field_needs_a_token_name() -> None:
    assert not valid_field("Bad Name", "x")
