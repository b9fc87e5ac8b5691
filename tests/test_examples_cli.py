"""The three runnable examples as commands, started in subprocesses on real loopback ports: a port
that is taken is one clear line and exit status 2 (never a traceback), and Ctrl-C stops them quietly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
# script -> (extra flags, a path it answers 200 on); --books keeps the bookstore's start short
EXAMPLES = {
    "bookstore.py": (["--books", "5"], "/books/1"),
    "plain_wsgi.py": ([], "/notes/1"),
    "custom_server.py": ([], "/items/1"),
}
# the bookstore's settings come from its flags here, not from the test run's environment
CLEAN_ENV = {"ETAGKIT_REDIS_URL": "", "BOOKSTORE_DB": "", "BOOKSTORE_BOOKS": ""}


def _default_sigint() -> None:
    """Ctrl-C's default in the child: a shell running this suite in the background may ignore SIGINT,
    and a Python started with SIGINT ignored never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _argv(script: str, port: int) -> list[str]:
    flags, _ = EXAMPLES[script]
    return [sys.executable, str(ROOT / "examples" / script), "--port", str(port), *flags]


def _run(script: str, port: int) -> subprocess.Popen[str]:
    import os

    return subprocess.Popen(
        _argv(script, port),
        cwd=ROOT,
        env={**os.environ, **CLEAN_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,  # noqa: PLW1509 - only resets one signal, before exec
    )


@pytest.mark.parametrize("script", list(EXAMPLES))
def test_a_busy_port_is_one_line_and_exit_status_2(script: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _run(script, port)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, (out, err)
    assert out == ""
    assert err.splitlines() == [f"{script[:-3]}: cannot listen on 127.0.0.1:{port}: Address already in use"]


@pytest.mark.parametrize("script", ["plain_wsgi.py", "custom_server.py"])
def test_a_bad_port_number_is_a_usage_error(script: str) -> None:
    run = subprocess.run(_argv(script, 70000), capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "not a port number (0-65535): '70000'" in run.stderr


@pytest.mark.parametrize("script", list(EXAMPLES))
def test_ctrl_c_stops_it_quietly(script: str) -> None:
    port = free_port()
    proc = _run(script, port)
    try:
        wait_for_port(port, timeout=60)
        assert httpx.get(f"http://127.0.0.1:{port}{EXAMPLES[script][1]}", timeout=10).status_code == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        _reap(proc, proc.kill)
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert f"http://127.0.0.1:{port}" in out + err  # it said where it listened


def _reap(proc: subprocess.Popen[str], kill: Callable[[], None]) -> None:
    if proc.poll() is None:
        kill()
        proc.communicate(timeout=10)
