"""Real servers for the tests: Redis processes and free loopback ports. Each starter cleans up."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

REQUIRE_REDIS = os.environ.get("ETAGKIT_REQUIRE_REDIS", "") not in ("", "0")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
    """Block until something accepts TCP connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


@contextlib.contextmanager
def serve_process(
    argv: Sequence[str],
    port: int,
    *,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv``, a server that will listen on 127.0.0.1:``port``; yield once it accepts.

    Its output goes to ``log`` (quoted in the error if it exits or never listens). On exit it gets
    SIGTERM, then SIGKILL after 10 s, and is always reaped.
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited ({proc.returncode}):\n{log.read_text()}")
            try:
                wait_for_port(port, timeout=0.5)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nothing on {port} after {timeout}s:\n{log.read_text()}") from None
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def redis_answers(url: str) -> bool:
    """True if a Redis server answers PING at url within half a second."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


class RedisServer:
    """A private ``redis-server`` process on a free loopback port (no persistence)."""

    def __init__(self, workdir: Path, *extra_args: str) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise FileNotFoundError("redis-server is not on PATH")
        self.exe = exe
        self.workdir = workdir
        self.port = free_port()
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not redis_answers(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Kill the server (SIGKILL: an abrupt outage, as in production) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        """Start again on the same port (after stop())."""
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def counting_connection_class() -> type:
    """A redis-py Connection class that counts the commands it sends (``cls.sent``): round trips."""
    import collections

    import redis

    class CountingConnection(redis.Connection):
        sent: collections.Counter[str] = collections.Counter()  # noqa: RUF012 - shared on purpose

        def send_command(self, *args: object, **kwargs: object) -> None:
            CountingConnection.sent[str(args[0]).upper()] += 1
            super().send_command(*args, **kwargs)

    return CountingConnection


class FakeTimer:
    """A clock the test moves by hand (``timer=`` for TagCache / MemoryStore): never sleep for time."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
