"""Scale-out figures of the Redis store, in real processes (issue 12), for ``bench_cache_redis``:

* N processes missing one cold key at once: computes with the lease (distributed single-flight)
  and without it (target: 1 with the lease);
* ``TagCache.get_or_set`` hit with the lease on vs off (the lease costs nothing on a hit: no round
  trip, target <= 1.1x);
* a namespace on a local 3-master Redis Cluster vs on one private ``redis-server``: reads per second
  from several processes (goal >= 2x) and the share of keys on each master (goal: >= 20% each).

Workers are this module run as ``python -m benchmarks._scaleout worker ...``: each prints one JSON
line. Everything it starts (servers, processes) is stopped before it returns.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's real-server helpers: one implementation

from support import LocalRedisCluster, RedisServer  # type: ignore[import-not-found]  # noqa: E402

from etagkit.cache import TagCache  # noqa: E402
from etagkit.cache._store import Entry  # noqa: E402
from etagkit.cache.redis import RedisStore, store_from_url  # noqa: E402

KEYS = 600


def _worker(argv: list[str]) -> None:
    mode, url, prefix, start_at, seconds = argv[0], argv[1], argv[2], float(argv[3]), float(argv[4])
    store = store_from_url(url, prefix=prefix, socket_timeout=5, connect_timeout=5)
    if mode == "miss":
        lease = None if argv[5] == "off" else 10.0
        cache = TagCache(store, lease=lease)
        time.sleep(max(0.0, start_at - time.time()))

        def compute() -> str:
            store.client.incr(prefix + "computes")
            time.sleep(seconds)  # an expensive query
            return "cold value"

        cache.get_or_set("cold", compute, tags=["t"], ttl=60)
        print(json.dumps({"done": True}))
    else:  # reads of random prefilled keys until start_at + seconds
        rng = random.Random(int(argv[5]))
        now = time.time()
        time.sleep(max(0.0, start_at - now))
        end, reads, get = start_at + seconds, 0, store.get
        while time.time() < end:
            for _ in range(50):
                get(f"key-{rng.randrange(KEYS)}", now)
            reads += 50
        print(json.dumps({"reads": reads, "seconds": seconds}))
    store.close()


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks._scaleout", "worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def _gather(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def computes(url: str, processes: int, lease: str) -> int:
    """How many of ``processes`` processes missing one cold key at once ran its compute."""
    prefix = f"bench-miss-{uuid.uuid4().hex[:8]}:"
    start_at = time.time() + 2.0  # every interpreter is up by then
    _gather([_spawn(["miss", url, prefix, str(start_at), "0.3", lease]) for _ in range(processes)])
    store = store_from_url(url, prefix=prefix)
    try:
        return int(store.client.get(prefix + "computes") or 0)
    finally:
        store.close()


def _fill(url: str, prefix: str) -> RedisStore:
    store = store_from_url(url, prefix=prefix, socket_timeout=5, connect_timeout=5)
    now = time.time()
    for n in range(KEYS):
        key = f"key-{n}"
        for _ in range(2):  # a shard's first write of a tag may be refused; the second is stored
            entry = Entry(
                {"n": n, "title": "x" * 200},
                ("t", f"k{n % 10}"),
                store.begin(["t"]),
                now + 600,
                now + 600,
                now + 600,
            )
            store.set(key, entry, now)
    return store


def reads_per_second(url: str, processes: int, seconds: float) -> tuple[float, dict[str, float]]:
    """Total reads/s of ``processes`` processes reading random keys of one namespace; and the share
    of the namespace's entries on each master (one entry for a single server)."""
    prefix = f"bench-reads-{uuid.uuid4().hex[:8]}:"
    store = _fill(url, prefix)
    shares: dict[str, float] = {}
    client: Any = store.client
    if store.is_cluster:
        for n in range(KEYS):
            key = f"key-{n}"
            node = client.get_node_from_key(store._shard(key).entries + key).name
            shares[node] = shares.get(node, 0) + 1 / KEYS
    else:
        shares["single"] = 1.0
    store.close()
    start_at = time.time() + 2.0
    results = _gather(
        [_spawn(["read", url, prefix, str(start_at), str(seconds), str(i)]) for i in range(processes)]
    )
    return sum(r["reads"] for r in results) / seconds, shares


def run(quick: bool) -> list[dict[str, Any]]:
    """The rows (``_harness`` format) of the scale-out figures."""
    rows: list[dict[str, Any]] = []
    processes = 4
    seconds = 1.0 if quick else 4.0
    with tempfile.TemporaryDirectory(prefix="etagkit-scaleout-") as tmp:
        with RedisServer(Path(tmp) / "single") as single:
            with_lease = computes(single.url, processes, "on")
            without = computes(single.url, processes, "off")
            rows.append(
                {
                    "scenario": f"{processes} processes missing one key: computes (lease on)",
                    "etagkit_s": float(with_lease),
                    "baseline": "computes with the lease off",
                    "baseline_s": float(without),
                    "ratio": with_lease / without if without else float("nan"),
                    "target": "1 compute",
                    "met": with_lease == 1,
                    "unit": "computes",
                    "note": "distributed single-flight over a Redis lease",
                }
            )
            single_rate, _ = reads_per_second(single.url, processes, seconds)
        with LocalRedisCluster(Path(tmp) / "cluster") as cluster:
            host, port = cluster.startup_nodes[0]
            cluster_rate, shares = reads_per_second(f"redis+cluster://{host}:{port}", processes, seconds)
    rows.append(
        {
            "scenario": f"reads/s from {processes} processes: 3-master cluster",
            "etagkit_s": cluster_rate,
            "baseline": "one redis-server",
            "baseline_s": single_rate,
            "ratio": cluster_rate / single_rate if single_rate else float("nan"),
            "target": "goal >= 2x",
            "met": single_rate > 0 and cluster_rate / single_rate >= 2,
            "unit": "reads/s",
            "clock": "wall",
            "note": "2 cores shared by the clients and the servers",
        }
    )
    low = min(shares.values()) if shares else 0.0
    rows.append(
        {
            "scenario": "keys per master of one namespace (3 masters)",
            "etagkit_s": low,
            "baseline": "20% (goal)",
            "baseline_s": 0.2,
            "ratio": low / 0.2,
            "target": "every master >= 20%",
            "met": len(shares) == 3 and low >= 0.2,
            "unit": "share",
            "note": ", ".join(f"{share:.0%}" for share in sorted(shares.values())),
        }
    )
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        _worker(sys.argv[2:])
    else:
        for result in run("--quick" in sys.argv[1:]):
            print(result)
