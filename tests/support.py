"""Real servers for the tests: Redis processes and free loopback ports. Each starter cleans up."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REQUIRE_REDIS = os.environ.get("ETAGKIT_REQUIRE_REDIS", "") not in ("", "0")


# The RFC conformance vectors, vendored in the repository (tests/data/conformance, with their source
# notes): a plain clone, a worktree and mutmut's ``mutants/`` copy of the tests all read this copy.
CONFORMANCE = Path(__file__).resolve().parent / "data" / "conformance"


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


def _free_cluster_port() -> int:
    """A free port whose cluster-bus companion (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class LocalRedisCluster:
    """Three ``redis-server --cluster-enabled yes`` masters on loopback, joined by ``redis-cli --cluster
    create``; ``stop()`` kills them and deletes ``workdir`` (their nodes.conf files)."""

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.nodes = [
            RedisServer(
                workdir / f"node{i}",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            )
            for i in range(masters)
        ]
        self.workdir = workdir
        for node in self.nodes:
            node.port = _free_cluster_port()

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", node.port) for node in self.nodes]

    def start(self) -> LocalRedisCluster:
        import redis

        try:
            for node in self.nodes:
                node.start()
            subprocess.run(
                [
                    shutil.which("redis-cli") or "redis-cli",
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{node.port}" for node in self.nodes),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
            )
            deadline = time.monotonic() + 30
            for node in self.nodes:
                client = redis.Redis(port=node.port)
                try:
                    while client.cluster("info").get("cluster_state") != "ok":
                        if time.monotonic() > deadline:
                            raise RuntimeError("the local Redis Cluster did not reach cluster_state:ok")
                        time.sleep(0.05)
                finally:
                    client.close()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill the nodes and delete their files (nodes.conf)."""
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def local_time_zone(name: str) -> Iterator[None]:
    """Run a block with the process's local time zone set to ``name`` (TZ + time.tzset), then restore
    it: code that wrongly goes through local time gives other answers outside UTC."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@contextlib.contextmanager
def waitress_server(app: Any, threads: int = 4) -> Iterator[int]:
    """``app`` served by waitress on a free loopback port (yields the port); stopped cleanly: every
    socket is closed from the server loop's own thread (closing them from another thread races its
    select()), then its task threads are shut down."""
    from waitress import wasyncore
    from waitress.server import create_server

    port = free_port()
    server: Any = create_server(app, host="127.0.0.1", port=port, threads=threads)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield port
    finally:
        sockets = server._map
        try:
            server.trigger.pull_trigger(lambda: wasyncore.close_all(sockets))
        except OSError:  # its trigger is gone (a descriptor closed elsewhere): close from here
            wasyncore.close_all(sockets)
        thread.join(10)
        # its task threads must be gone: a late one would close a socket number reused meanwhile
        server.task_dispatcher.shutdown(timeout=30)
        assert not server.task_dispatcher.threads, "waitress task threads still running"
        del server
        gc.collect()  # its descriptors close now, not when a later server reuses their numbers


def head_and_first_event(port: int, method: str = "GET", path: str = "/", timeout: float = 15.0) -> bytes:
    """One raw HTTP/1.1 request on loopback: what arrived up to the end of the head (HEAD) or up to
    the first ``data: first`` event (GET). A face that held a stream back never delivers it, and the
    read times out instead (the stream tests' gate technique)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        got = b""
        while b"\r\n\r\n" not in got or (method == "GET" and b"data: first" not in got):
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
        return got
