"""Real processes sharing limits: through `state/coord.sqlite` and through a real redis-server.

Each worker is a fresh interpreter that waits for a start file, so all of them contend from the
same instant. Timestamps are wall-clock (`time.time`), the clock every process shares.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.quota import QuotaLedger
from services.sandbox.limits import SlidingWindow, Window
from tests.conftest import REPO, RedisServer
from tests.services.coord.conftest import max_in_window

pytestmark = pytest.mark.slow

WORKER = r"""
import asyncio, json, sys, time
from datetime import UTC, datetime
from pathlib import Path

args = json.loads(sys.argv[1])
go = Path(args["go"])
from services.coord.backends import open_machine, open_redis
from services.coord.keys import Scope
from services.coord.limiter import LocalLimiter
from services.coord.singleflight import once


def clock():
    return datetime.now(UTC)


async def pace(coordination, scope, rate, n):
    limiter = coordination.limiter(scope, rate) if coordination else LocalLimiter(scope, rate)
    times = []
    for _ in range(n):
        await limiter.acquire()
        times.append(time.time())
    stats = getattr(getattr(limiter, "_shared", limiter), "stats", None)
    return {"times": times, "rebooked": stats.rebooked if stats else 0}


async def spend(coordination, scope, limit, n):
    return sum([await coordination.quota.try_reserve(scope, limit) for _ in range(n)])


async def fly(coordination, key, out):
    async def fetch():
        with open(out / "fetches.log", "a") as log:
            log.write(args["who"] + "\n")
        await asyncio.sleep(0.3)
        (out / "value").write_text("payload")
        return "fetched"

    async def read():
        path = out / "value"
        return "read" if path.exists() else None

    return await once(coordination.flight, key, fetch, read, ttl=5, timeout=10)


async def main():
    state = Path(args["state"])
    machine = open_machine(state, clock=clock)
    shared = await open_redis(args["url"], state, machines=args.get("machines", 1), clock=clock)
    print("ready", flush=True)
    while not go.exists():
        await asyncio.sleep(0.005)
    out = {}
    if args["mode"] == "pace":
        s = Scope("test", "paced")
        out["machine"], out["redis"], out["local"] = await asyncio.gather(
            pace(machine, s, args["rate"], args["n"]),
            pace(shared, s, args["rate"], args["n"]),
            pace(None, s, args["rate"], args["n"]),
        )
    elif args["mode"] == "quota":
        # two scopes: the Redis backend also counts every call in this machine's ledger
        out["machine"], out["redis"] = await asyncio.gather(
            spend(machine, Scope("test", "quota-m"), args["limit"], args["n"]),
            spend(shared, Scope("test", "quota-r"), args["limit"], args["n"]),
        )
    elif args["mode"] == "flight":
        base = Path(args["out"])
        out["machine"], out["redis"] = await asyncio.gather(
            fly(machine, "k1", base / "machine"), fly(shared, "k2", base / "redis")
        )
    elif args["mode"] == "hold":  # lead, say so, and hang until killed (renewing the lease)
        async def hang():
            print("leading", flush=True)
            await asyncio.sleep(3600)

        async def nothing():
            return None

        await asyncio.gather(
            once(machine.flight, "k1", hang, nothing, ttl=1.0, timeout=10),
            once(shared.flight, "k2", hang, nothing, ttl=1.0, timeout=10),
        )
    elif args["mode"] == "failover":
        s = Scope("test", "failover")
        limiter = shared.limiter(s, args["rate"])
        rows = []
        for i in range(args["n"]):
            await limiter.acquire()
            granted = await shared.quota.try_reserve(s, args["limit"])
            rows.append([time.time(), granted])
            print(f"progress {i}", flush=True)
        out["rows"] = rows
        out["note"] = shared.status.note()
        out["shared"] = shared.status.shared
    await shared.aclose()
    await machine.aclose()
    print(json.dumps(out), flush=True)


asyncio.run(main())
"""


def spawn(args: dict[str, Any]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def refused(times: list[float], window: Window) -> int:
    """How many of these calls the sandbox's sliding window would answer with 429."""
    limits, count = SlidingWindow(window), 0
    for t in sorted(times):
        if limits.wait_needed(t) > 0:
            count += 1
        else:
            limits.record(t)
    return count


def run_together(tmp: Path, count: int, args: dict[str, Any]) -> list[dict[str, Any]]:
    go = tmp / "go"
    workers = [spawn({**args, "go": str(go), "who": f"w{i}"}) for i in range(count)]
    for worker in workers:  # imports done, backends open: all wait on the start file
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
    go.touch()
    results = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=60)
        assert worker.returncode == 0, stderr[-2000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


def test_three_processes_never_exceed_a_shared_limit(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """3 processes x 10 calls at 5/s: shared through state/ and through Redis, no 1-second
    window holds more than 5; each pacing itself alone (the control), they overrun."""
    results = run_together(
        tmp_path,
        3,
        {
            "mode": "pace",
            "state": str(tmp_path / "state"),
            "url": redis_server.url,
            "rate": 5.0,
            "n": 10,
        },
    )
    peaks, too_many = {}, {}
    for backend in ("machine", "redis", "local"):
        times = [t for r in results for t in r[backend]["times"]]
        assert len(times) == 30
        peaks[backend] = max_in_window(times)
        too_many[backend] = refused(times, Window(5, 1.0))
    rebooked = {b: sum(r[b]["rebooked"] for r in results) for b in ("machine", "redis")}
    print(
        f"3 processes x 10 calls at 5/s: most in any 1 s window {peaks}, "
        f"429s a 5-per-second sliding window would answer {too_many}, rebooked {rebooked}"
    )
    assert peaks["machine"] <= 5 and too_many["machine"] == 0
    assert peaks["redis"] <= 5 and too_many["redis"] == 0
    assert peaks["local"] > 5 and too_many["local"] > 0  # the control: per-process pacing
    for backend in ("machine", "redis"):
        times = sorted(t for r in results for t in r[backend]["times"])
        assert times[-1] - times[0] < 30 / 5 * 1.3  # shared, yet close to the full rate


def test_quota_is_never_overspent_by_concurrent_processes(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    results = run_together(
        tmp_path,
        3,
        {
            "mode": "quota",
            "state": str(tmp_path / "state"),
            "url": redis_server.url,
            "limit": 25,
            "n": 20,
        },
    )
    assert sum(r["machine"] for r in results) == 25
    assert sum(r["redis"] for r in results) == 25


def test_two_processes_fetch_a_key_once(tmp_path: Path, redis_server: RedisServer) -> None:
    for backend in ("machine", "redis"):
        (tmp_path / "out" / backend).mkdir(parents=True)
    results = run_together(
        tmp_path,
        2,
        {
            "mode": "flight",
            "state": str(tmp_path / "state"),
            "url": redis_server.url,
            "out": str(tmp_path / "out"),
        },
    )
    for backend in ("machine", "redis"):
        log = (tmp_path / "out" / backend / "fetches.log").read_text().split()
        assert len(log) == 1, (backend, log)
        assert sorted(r[backend] for r in results) == ["fetched", "read"]


def test_redis_killed_mid_run_falls_back_without_a_crash_or_a_lost_count(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """SIGKILL the server after 8 of 24 calls: the worker goes on with the machine-wide
    backends, the rate and quota divided by 2 machines, and every call it made is counted."""
    state = tmp_path / "state"
    go = tmp_path / "go"
    go.touch()
    worker = spawn(
        {
            "mode": "failover",
            "state": str(state),
            "url": redis_server.url,
            "go": str(go),
            "who": "w",
            "rate": 20.0,
            "limit": 30,
            "n": 24,
            "machines": 2,
        }
    )
    assert worker.stdout is not None
    for line in worker.stdout:
        if line.startswith("progress 7"):
            redis_server.kill()
            break
    stdout, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr[-2000:]
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out["shared"] is False
    assert "divided by 2 machines" in out["note"], out["note"]
    assert re.search(r"\((ConnectionError|TimeoutError)\)", out["note"]), out["note"]
    assert "127.0.0.1" in out["note"]
    granted = [g for _, g in out["rows"]]
    assert len(granted) == 24 and all(granted[:8])
    # After the switch the local share is 30 // 2 = 15 for the day, and the 8 calls made via
    # Redis already count against it: 7 more are granted, then refused.
    assert sum(granted) == 15
    ledger = QuotaLedger(state, clock=lambda: datetime.now(UTC))
    try:
        assert ledger.used_today("failover", "test") == 15
    finally:
        ledger.close()
    times = [t for t, _ in out["rows"]]
    # No window mixes calls paced by Redis (20/s) with the local ones (10/s): at most 20, and
    # at most 10 once only local calls remain.
    assert max_in_window(times) <= 20
    switch = next(i for i in range(8, 24) if times[i] - times[i - 1] >= 0.9)
    assert max_in_window(times[switch:]) <= 10


async def test_a_killed_owner_frees_its_key_after_the_ttl(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """The owner renews its 1 s lease while alive (so it outlives the TTL), then is SIGKILLed
    mid-fetch: within about a TTL another process leads, on both backends."""
    import asyncio

    from services.coord.backends import open_machine, open_redis
    from services.coord.singleflight import FlightStats, once

    state, go = tmp_path / "state", tmp_path / "go"
    go.touch()
    holder = spawn({"mode": "hold", "state": str(state), "url": redis_server.url, "go": str(go)})
    assert holder.stdout is not None
    lines = [holder.stdout.readline() for _ in range(3)]
    assert lines == ["ready\n", "leading\n", "leading\n"]
    machine = open_machine(state, clock=lambda: datetime.now(UTC))
    shared = await open_redis(redis_server.url, state, machines=1, clock=lambda: datetime.now(UTC))
    try:
        await asyncio.sleep(1.5)  # past the TTL: only the holder's renewals keep its leases
        assert await machine.flight.held("k1") and await shared.flight.held("k2")
        holder.kill()
        holder.wait(timeout=10)
        killed = time.monotonic()
        stats = FlightStats()

        async def fetch() -> str:
            return "fetched"

        async def nothing() -> str | None:
            return None

        got = await asyncio.gather(
            once(machine.flight, "k1", fetch, nothing, ttl=5, timeout=10, stats=stats),
            once(shared.flight, "k2", fetch, nothing, ttl=5, timeout=10, stats=stats),
        )
        assert got == ["fetched", "fetched"] and stats.led == 2 and stats.gave_up_waiting == 0
        assert time.monotonic() - killed < 2.5
    finally:
        await shared.aclose()
        await machine.aclose()
