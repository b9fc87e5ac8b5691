"""The ``etagkit`` command line: ``etagkit check URL`` audits a live URL's validators.

This module only does I/O and printing; what to send and what the answers mean lives in
``etagkit.core.audit``. It needs the ``cli`` extra (click, rich, httpx); without it ``etagkit`` prints
one line saying so and exits 2. Exit codes: 0 no check failed, 1 a check failed, 2 usage or
connection problem (one line on stderr, never a traceback).

The audited server is a stranger: each probe has an overall deadline (``--timeout``, however slowly
the bytes drip), a body is read up to ``--max-body`` bytes and then reported, and interim 1xx answers
are skipped in one linear pass; each of these ends the command with exit 2 and one line.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import SplitResult, urlsplit

from . import __version__
from .core.audit import Answer, Check, Headers, Probe, Send, Verdict, audit, exit_code
from .core.headers import TOKEN

if TYPE_CHECKING:
    import click
    import httpx
    from rich.console import Console

__all__ = ["DEFAULT_MAX_BODY", "CheckError", "build_cli", "main", "run_check"]

T = TypeVar("T")
DEFAULT_MAX_BODY = 16 * 1024 * 1024  # bytes of one answer's body read before it is reported

MISSING_EXTRA = 'etagkit: the command line needs click, rich and httpx: pip install "etagkit[cli]"'
_WIRE_LIMIT = 1 << 20  # bytes read from one wire probe; more already proves a body was sent
_WIRE_GRACE = 1.0  # seconds to wait for more bytes once the header section is in
# field-name = token  (RFC 9110 §5.1)
_FIELD_NAME = re.compile(TOKEN)
# status-line = HTTP-version SP status-code SP [ reason-phrase ]  (RFC 9112 §4)
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?")
_STYLES = {
    Verdict.PASS: "green",
    Verdict.INFO: "cyan",
    Verdict.WARN: "yellow",
    Verdict.FAIL: "bold red",
    Verdict.SKIP: "dim",
}


class CheckError(Exception):
    """A usage or connection problem: ``etagkit check`` prints it as one line and exits 2."""


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``[project.scripts] etagkit``)."""
    try:
        import click  # noqa: F401
        import httpx  # noqa: F401
        import rich  # noqa: F401
    except ImportError:
        print(MISSING_EXTRA, file=sys.stderr)
        raise SystemExit(2) from None
    build_cli().main(args=list(argv) if argv is not None else None, prog_name="etagkit")


def build_cli() -> click.Group:
    """The click command group (``check``); tests drive it with click's CliRunner."""
    import click

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="etagkit")
    def cli() -> None:
        """etagkit: cheap, correct HTTP revalidation."""

    @cli.command()
    @click.argument("url")
    @click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
    @click.option("--writes", is_flag=True, help="Also PUT the representation back (changes data!).")
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=10.0,
        show_default=True,
        help="Seconds each probe may take in all: connecting, the answer's header and its body.",
    )
    @click.option(
        "--max-body",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_BODY,
        show_default=True,
        metavar="BYTES",
        help="Largest answer body read; a larger one ends the check (exit 2).",
    )
    @click.option(
        "--header", "-H", "headers", multiple=True, metavar="NAME:VALUE", help="Send a header (repeatable)."
    )
    @click.pass_context
    def check(
        ctx: click.Context,
        *,
        url: str,
        as_json: bool,
        writes: bool,
        timeout: float,
        max_body: int,
        headers: tuple[str, ...],
    ) -> None:
        """Audit URL's ETag, Cache-Control and conditional requests as a client would.

        GET twice, revalidate with If-None-Match and If-Modified-Since, compare HEAD with GET and,
        with --writes, PUT with a stale If-Match (412) and without (428). Exit code 0 when no check
        fails, 1 when one does, 2 for usage or connection problems.
        """
        try:
            checks = run_check(
                url, writes=writes, timeout=timeout, headers=parse_headers(headers), max_body=max_body
            )
        except CheckError as exc:
            click.echo(f"etagkit check: error: {exc}", err=True)
            ctx.exit(2)
        if as_json:
            click.echo(json.dumps(report(url, checks), indent=2))
        else:
            from rich.console import Console

            print_table(Console(), url, checks)
        ctx.exit(exit_code(checks))

    return cli


def parse_headers(options: Sequence[str]) -> Headers:
    """``NAME:VALUE`` options as header pairs; a bad one is a CheckError."""
    pairs: list[tuple[str, str]] = []
    for option in options:
        name, sep, value = option.partition(":")
        if not sep or not _FIELD_NAME.fullmatch(name.strip()) or "\r" in value or "\n" in value:
            raise CheckError(f"--header wants NAME:VALUE with a token name, not {option!r}")
        pairs.append((name.strip(), value.strip(" \t")))
    return tuple(pairs)


def run_check(
    url: str,
    *,
    writes: bool = False,
    timeout: float = 10.0,
    headers: Headers = (),
    max_body: int = DEFAULT_MAX_BODY,
) -> list[Check]:
    """Audit ``url`` over real HTTP; transport problems, a probe that takes longer than ``timeout``
    seconds in all and a body over ``max_body`` bytes become CheckError."""
    import httpx

    parts = _split_url(url)
    base: Headers = (
        ("User-Agent", f"etagkit-check/{__version__}"),
        ("Accept-Encoding", "gzip, deflate"),
        *headers,
    )
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        return audit(_sender(client, url, parts, base, timeout, max_body=max_body), writes=writes)


def report(url: str, checks: Sequence[Check]) -> dict[str, Any]:
    """The JSON form of an audit."""
    return {
        "url": url,
        "ok": exit_code(checks) == 0,
        "summary": {v.value: sum(c.verdict is v for c in checks) for v in Verdict},
        "checks": [{"name": c.name, "verdict": c.verdict.value, "detail": c.detail} for c in checks],
    }


def print_table(console: Console, url: str, checks: Sequence[Check]) -> None:
    """A rich table (colour only when the console is a terminal), then a one-line summary."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"etagkit check {url}", title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for c in checks:
        table.add_row(Text(c.name), Text(c.verdict.value, style=_STYLES[c.verdict]), Text(c.detail))
    console.print(table)
    counts = report(url, checks)["summary"]
    console.print(Text(", ".join(f"{n} {name}" for name, n in counts.items() if n)))


def _split_url(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise CheckError(f"not a valid URL: {url!r} ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CheckError(f"URL must start with http:// or https:// and name a host, not {url!r}")
    return parts


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _where(parts: SplitResult) -> str:
    return f"{parts.hostname}:{_port(parts)}"


def _sender(
    client: httpx.Client, url: str, parts: SplitResult, base: Headers, timeout: float, *, max_body: int
) -> Send:
    """Send probes with httpx; ``wire`` probes over a socket of their own (see _wire_exchange). Each
    probe runs under :func:`_within` its overall deadline; a body is read up to ``max_body`` bytes."""
    import httpx

    where = _where(parts)

    def fetch(probe: Probe) -> Answer:
        with client.stream(
            probe.method, url, headers=[*base, *probe.headers], content=probe.body or None
        ) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_body:
                    raise CheckError(
                        f"{probe.method} {url}: the body is larger than {max_body} bytes (--max-body)"
                    )
            return Answer(response.status_code, tuple(response.headers.multi_items()), bytes(body))

    def send(probe: Probe) -> Answer:
        if probe.wire:
            return _within(timeout, where, probe, lambda: _wire_exchange(parts, probe, base, timeout))
        try:
            return _within(timeout, where, probe, lambda: fetch(probe))
        except httpx.TimeoutException:
            raise CheckError(f"no answer from {where} within {timeout:g} s (timeout)") from None
        except httpx.ConnectError as exc:
            raise CheckError(f"cannot connect to {where}: {_reason(exc)}") from None
        except (httpx.RemoteProtocolError, httpx.DecodingError) as exc:
            raise CheckError(f"not an HTTP answer from {where}: {_reason(exc)}") from None
        except httpx.HTTPError as exc:
            raise CheckError(f"{probe.method} {url} failed: {_reason(exc)}") from None

    return send


def _within(timeout: float, where: str, probe: Probe, work: Callable[[], T]) -> T:
    """``work()`` with an overall deadline of ``timeout`` seconds: a server that drips one byte per
    second never trips a per-read timeout, so the probe runs in a daemon thread that is abandoned
    (the command then exits) when the deadline passes. Its exception is raised here; one that no
    handler expects becomes a CheckError, never a traceback."""
    outcome: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=run, name="etagkit-check-probe", daemon=True).start()
    if not done.wait(timeout):
        raise CheckError(f"{probe.method}: no complete answer from {where} within {timeout:g} s (--timeout)")
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    if isinstance(value, Exception) and not _expected(value):
        raise CheckError(f"{probe.method} to {where} failed: {_reason(value)}") from None
    raise value


def _expected(exc: Exception) -> bool:
    import httpx

    return isinstance(exc, CheckError | httpx.HTTPError)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _wire_exchange(parts: SplitResult, probe: Probe, base: Headers, timeout: float) -> Answer:
    """Send one HTTP/1.1 request with ``Connection: close`` and keep every byte of the answer.

    An HTTP client drops whatever a server writes after the header section of a 304 or of a HEAD
    answer (RFC 9112 §6.3: such messages end there); httpx (h11) keeps no trace of those bytes
    (tests/test_cli.py shows it), so only the raw stream shows such a body. The reply is read until
    the server closes, or goes quiet once its header section is in; interim 1xx answers are skipped.
    """
    deadline = time.monotonic() + timeout
    where = _where(parts)
    host, port = parts.hostname or "", _port(parts)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{probe.method} {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}"]
    lines += [f"{k}: {v}" for k, v in (*base, *probe.headers) if k.lower() not in ("host", "connection")]
    request = "\r\n".join([*lines, "Connection: close", "", ""]).encode("latin-1", "replace")
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            if parts.scheme == "https":
                with ssl.create_default_context().wrap_socket(raw, server_hostname=host) as tls:
                    data = _exchange(tls, request, deadline)
            else:
                data = _exchange(raw, request, deadline)
    except TimeoutError:
        raise CheckError(f"no answer from {where} within {timeout:g} s (timeout)") from None
    except ssl.SSLError as exc:
        raise CheckError(f"TLS with {where} failed: {_reason(exc)}") from None
    except OSError as exc:
        raise CheckError(f"cannot connect to {where}: {_reason(exc)}") from None
    return _parse_wire(data, where, probe.method)


def _exchange(sock: socket.socket, request: bytes, deadline: float) -> bytes:
    """Write the request, read until the server closes (or goes quiet after its header section), at
    most ``_WIRE_LIMIT`` bytes and never past ``deadline`` (time.monotonic). Linear in the bytes read."""
    sock.sendall(request)
    data = bytearray()
    headed = False  # the first header section is in: from then on, silence ends the answer
    while len(data) < _WIRE_LIMIT:
        left = deadline - time.monotonic()
        if left <= 0:
            if headed:
                break
            raise TimeoutError
        sock.settimeout(min(left, _WIRE_GRACE) if headed else left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if headed:
                break  # the header section is in and the server stays silent: that is the answer
            raise
        if not chunk:
            break
        start = max(len(data) - 3, 0)  # a CRLFCRLF may straddle two reads: look at the new bytes only
        data += chunk
        headed = headed or data.find(b"\r\n\r\n", start) >= 0
    return bytes(data)


def _parse_wire(data: bytes, where: str, method: str) -> Answer:
    """Status, fields and the bytes after the header section; interim 1xx answers skipped in one
    pass over ``data`` (an offset moves on; the buffer is never re-sliced per answer)."""
    pos = interim = 0
    while True:
        end = data.find(b"\r\n\r\n", pos)
        status_line, *field_lines = data[pos : max(end, pos)].split(b"\r\n")
        match = _STATUS_LINE.fullmatch(status_line)
        if end < 0 or match is None:
            if interim and end < 0:  # the read limit or the close came before a final answer
                raise CheckError(
                    f"not an HTTP answer from {where} to {method}: {interim} interim 1xx answers and no "
                    f"final one in the {len(data)} bytes read"
                )
            raise CheckError(f"not an HTTP answer from {where} to {method}: {data[pos : pos + 60]!r}")
        pos = end + 4
        status = int(match.group(1))
        if status >= 200 or status == 101:
            break
        interim += 1
    fields: list[tuple[str, str]] = []
    for line in field_lines:
        name, colon, value = line.decode("latin-1").partition(":")
        if colon and _FIELD_NAME.fullmatch(name):
            fields.append((name, value.strip(" \t")))
    return Answer(status, tuple(fields), data[pos:])
