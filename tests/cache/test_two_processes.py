"""Two real processes share one namespace (a cron refresh and an interactive run).

Neither may fail with "database is locked" nor see or leave a corrupted entry. Both processes
open the namespace at the same moment (diskcache's schema setup is the fragile part), then
interleave thousands of writes and counted reads, including writes to the same keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from cache.disk.store import DiskNamespace
from cache.disk.verify import verify
from cache.report import build_cache_report
from tests.conftest import REPO

N = 1500

WORKER = r"""
import json, sys, time
from datetime import timedelta
from pathlib import Path

directory, who, n, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
other = "b" if who == "a" else "a"
while not go.exists():
    time.sleep(0.001)

from cache.disk.store import DiskNamespace

store = DiskNamespace(directory, "fmp")
bad, seen_other, shared_reads = [], 0, 0
for i in range(n):
    store.put(f"fmp:profile:symbol={who}{i}", {"who": who, "i": i, "pad": "x" * 300},
              dataset="profile", ttl=timedelta(days=1))
    store.put(f"fmp:profile:shared={i % 40}", {"who": who, "i": i},
              dataset="profile", ttl=timedelta(days=1))
    read = store.get(f"fmp:profile:symbol={other}{i}")
    if read.envelope is not None:
        seen_other += 1
        if read.envelope.payload != {"who": other, "i": i, "pad": "x" * 300}:
            bad.append(f"{other}{i}")
    shared = store.get(f"fmp:profile:shared={(i * 7) % 40}")
    if shared.envelope is not None:
        shared_reads += 1
        if shared.envelope.payload.get("who") not in ("a", "b"):
            bad.append("shared")
store.close()
print(json.dumps({"bad": bad, "seen_other": seen_other, "shared_reads": shared_reads,
                  "counters": dict(store.run_counters)}))
"""


def test_two_processes_share_a_namespace(tmp_path: Path) -> None:
    directory = tmp_path / "cache" / "fmp"
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(directory), who, str(N), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        for who in ("a", "b")
    ]
    time.sleep(0.3)  # both interpreters up and waiting at the barrier
    go.touch()
    # A third reader (the report) runs while they write: read-only, it must not fail either.
    reports = 0
    while any(p.poll() is None for p in procs):
        if (directory / "cache.db").exists():
            build_cache_report(tmp_path / "cache", now=datetime.now(UTC))
            reports += 1
        time.sleep(0.05)
    outs = [p.communicate(timeout=90) for p in procs]
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err.decode()
        assert b"locked" not in err, err.decode()
    results = [json.loads(out) for out, _ in outs]
    assert all(r["bad"] == [] for r in results)
    assert all(r["counters"]["writes"] == 2 * N for r in results)
    assert sum(r["seen_other"] for r in results) > 0  # they really overlapped
    assert reports > 0

    # Every entry of both processes is there, intact; the shared counters add up exactly.
    store = DiskNamespace(directory, "fmp")
    try:
        for who in ("a", "b"):
            for i in range(0, N, 37):
                read = store.peek(f"fmp:profile:symbol={who}{i}")
                assert read.envelope is not None
                assert read.envelope.payload["i"] == i
        counters = store.lifetime_counters()
        assert counters["writes"] == 4 * N
        assert counters["corrupt"] == 0
        lookups = counters["hits"] + counters["misses"] + counters["stale"]
        assert lookups == 4 * N
        assert len(list(store.iter_keys())) == 2 * N + 40
    finally:
        store.close()
    result = verify(tmp_path / "cache", now=datetime.now(UTC))
    assert result.sound and result.entries == 2 * N + 40
