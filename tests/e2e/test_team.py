"""Team scale end to end with the real parts: tradescout processes beside each other on one data
root (sharing state/), three processes with their own data roots sharing one real redis-server,
and a Dask cluster of process workers on 127.0.0.1 — all against the sandbox and its defences
(SEC blocks a client over 10 requests/s; the others answer 429), each with the negative control
that shows the overrun when nothing is shared.

Client rates are raised towards the sandbox's limits (Yahoo and FMP 4/s of 5, FRED 1.6/s of 2;
SEC keeps its 8/s of 10; CoinGecko's two calls need not wait 2 s apart within its 30 a
minute), so one process alone is within every limit and two together are not.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from services.sandbox.server import SandboxServer
from services.sandbox.universe import equity_symbols
from tests.conftest import (
    TRADESCOUT,
    RedisServer,
    clean_env,
    local_tickers,
    reset,
    sandbox_stats,
)

pytestmark = pytest.mark.slow

RATES = """
[services.yahoo_finance]
rate_per_second = 4
[services.fred]
rate_per_second = 1.6
[services.coingecko]
rate_per_second = 5
[services.fmp]
rate_per_second = 4
"""
TICKERS = [t for t in equity_symbols(us_only=True) if t not in local_tickers()][:12]
# Three overlapping portfolios and their union, cut from one set of trades (so a ticker has the
# same trades, hence the same requests, wherever it appears).
PORTFOLIOS = {
    "p1": TICKERS[0:8],
    "p2": TICKERS[4:12],
    "p3": TICKERS[0:4] + TICKERS[8:12],
    "union": TICKERS,
}


def union_rows(tmp: Path) -> tuple[list[str], list[list[str]]]:
    from services.sandbox.portfolios import write_trades_csv

    path = tmp / "all.csv"
    write_trades_csv(path, 3 * len(TICKERS), TICKERS, seed=5)
    with path.open(encoding="utf-8", newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def data_root(tmp: Path, name: str, portfolios: Sequence[str], config: str = "") -> Path:
    """A data root holding `portfolios` (cut from the union's trades) and a tradescout.toml."""
    root = tmp / name / "data"
    header, rows = union_rows(tmp)
    column = header.index("Ticker")
    for portfolio in portfolios:
        keep = set(PORTFOLIOS[portfolio])
        out = root / "raw" / "trade_history" / f"{portfolio}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(r for r in rows if r[column] in keep)
    (root.parent / "tradescout.toml").write_text(RATES + config, encoding="utf-8")
    return root


def start(
    root: Path, url: str, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(TRADESCOUT), *args, "--data-root", str(root), "--json"],
        cwd=root.parent,
        env=clean_env({"TRADESCOUT_SANDBOX_URL": url, **(env or {})}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: Sequence[subprocess.Popen[str]]) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert "Traceback" not in stderr, stderr[-3000:]
        out.append((proc.returncode, json.loads(stdout)))
    return out


def counts(url: str, field: str = "requests") -> dict[str, int]:
    return {name: s[field] for name, s in sandbox_stats(url).items() if s[field]}


def overrun(url: str) -> int:
    """429s plus SEC's rate-threshold refusals (its block) — what sharing must prevent."""
    stats = sandbox_stats(url)
    return sum(s["rate_limited"] for s in stats.values()) + stats["sec_edgar"]["refused"]


def entries(root: Path) -> dict[str, int]:
    """Cache entries per service: each a key some request answered."""
    from cache.disk.store import DiskCache

    with DiskCache(root / "cache") as cache:
        found = {n: cache.namespace(n).stats().entries for n in cache.existing_namespaces()}
    return {n: k for n, k in found.items() if k}


def report(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(path).read_text("utf-8"))
    return loaded


def test_cron_refresh_beside_discover_stay_within_every_limit(tmp_path: Path) -> None:
    """One data root, a refresh and a discover at once: one pacing queue per service for both
    processes (state/coord.sqlite), each key fetched once. The control — each process pacing
    itself ("process") — overruns SEC's 10 requests/s, or answers 429, and fetches twice."""
    with SandboxServer(faults=(), sec_block_seconds=5) as sandbox:
        url = sandbox.url
        shared = data_root(tmp_path, "shared", ["union"])
        runs = finish([start(shared, url, "refresh"), start(shared, url, "discover", "union")])
        assert [code for code, _ in runs] == [0, 0], runs
        total = counts(url)
        assert overrun(url) == 0, sandbox_stats(url)
        # Every key asked once between the two — but CoinGecko's: its 15-minute TTL is inside any
        # refresh horizon, so a refresh renews what a discover fetched before the refresh began.
        kept = entries(shared)
        assert {k: v for k, v in total.items() if k != "coingecko"} == {
            k: v for k, v in kept.items() if k != "coingecko"
        }, (total, kept)
        assert kept["coingecko"] <= total["coingecko"] <= 2 * kept["coingecko"]
        assert report(runs[1][1]["report_path"])["discovery_metadata"]["shared"]["limits"] == (
            "machine"
        )

        time.sleep(1.1)
        reset(url)
        alone = data_root(tmp_path, "control", ["union"], '[shared]\npacing = "process"\n')
        finish([start(alone, url, "refresh"), start(alone, url, "discover", "union")])
        assert overrun(url) > 0, sandbox_stats(url)
        assert sum(counts(url).values()) > sum(total.values())


def test_three_machines_share_one_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    """Three processes with their own data roots (three "machines") discover overlapping
    portfolios at once through one Redis: no 429, no SEC block, FMP's daily quota (set to what
    the union needs) never exceeded, and exactly the requests one process discovering the union
    makes. Without Redis (the control) the same three overrun and fetch more."""
    with SandboxServer(faults=(), sec_block_seconds=5) as sandbox:
        url = sandbox.url
        yardstick = data_root(tmp_path, "one", ["union"])
        ((code, body),) = finish([start(yardstick, url, "discover", "union")])
        assert code == 0, body
        union = counts(url)
        quota = union["fmp"]

        reset(url)
        env = {"TRADESCOUT_REDIS_URL": redis_server.url}
        limits = f"daily_quota = {quota}\n"  # under [services.fmp]
        roots = [
            data_root(tmp_path, f"m{i}", [p], limits) for i, p in enumerate(["p1", "p2", "p3"])
        ]
        runs = finish(
            [
                start(root, url, "discover", p, env=env)
                for root, p in zip(roots, ["p1", "p2", "p3"], strict=True)
            ]
        )
        assert [c for c, _ in runs] == [0, 0, 0], runs
        assert overrun(url) == 0, sandbox_stats(url)
        assert counts(url) == union
        day = datetime.now(UTC).date().isoformat()
        spent = redis.Redis.from_url(redis_server.url).get(f"tradescout:quota:sandbox:fmp:{day}")
        assert spent is not None and int(spent) == quota  # counted once for the team, not over
        for _, body in runs:
            shared = report(body["report_path"])["discovery_metadata"]["shared"]
            assert shared["limits"] == "redis" and shared["cache"] == "redis"
            assert shared["redis"].startswith("redis://127.0.0.1:")

        time.sleep(1.1)
        reset(url)
        roots = [data_root(tmp_path, f"c{i}", [p]) for i, p in enumerate(["p1", "p2", "p3"])]
        finish(
            [
                start(root, url, "discover", p)
                for root, p in zip(roots, ["p1", "p2", "p3"], strict=True)
            ]
        )
        assert overrun(url) > 0 or sum(counts(url).values()) > sum(union.values())
        assert sum(counts(url).values()) > sum(union.values())


def test_redis_killed_mid_run(tmp_path: Path, redis_server: RedisServer) -> None:
    """Redis SIGKILLed while three processes are fetching: each goes on with its local backends,
    every limit divided by the 3 configured machines, writes its report and says so in
    `discovery_metadata.shared`. SEC (8/s, a third each) is never blocked. A service whose share
    is under one call a second (FRED: 1.6/s over 3) can still meet a 429 when the three happen
    to call within the same second — dividing a rate cannot bound a one-second window below one
    call per machine — so the only gaps allowed are `rate_limited` ones, after their retries."""
    with SandboxServer(faults=(), sec_block_seconds=5, latency_ms=40) as sandbox:
        url = sandbox.url
        env = {"TRADESCOUT_REDIS_URL": redis_server.url}
        roots = [
            data_root(tmp_path, f"m{i}", [p], "[shared]\nmachines = 3\n")
            for i, p in enumerate(["p1", "p2", "p3"])
        ]
        procs = [
            start(root, url, "discover", p, env=env)
            for root, p in zip(roots, ["p1", "p2", "p3"], strict=True)
        ]
        deadline = time.monotonic() + 60
        while sum(counts(url, "served").values()) < 12:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.02)
        redis_server.kill()
        assert sum(counts(url, "served").values()) < 30  # killed mid-run, not after it
        runs = finish(procs)
        assert sandbox_stats(url)["sec_edgar"]["refused"] == 0
        for code, body in runs:
            gaps = report(body["report_path"])["gaps"]
            assert code in (0, 3) and {g["reason"] for g in gaps} <= {"rate_limited"}, gaps
            shared = report(body["report_path"])["discovery_metadata"]["shared"]
            assert shared["limits"] == "local" and shared["cache"] == "local", shared
            assert "divided by 3 machines" in shared["note"], shared


def worker_pids(cli: psutil.Process) -> list[int]:
    """The Dask worker processes a `--cluster local:N` command started (its spawned children)."""
    return [
        p.pid
        for p in cli.children(recursive=True)
        if any("spawn_main" in part for part in p.cmdline())
    ]


def test_a_dask_worker_killed_mid_task(tmp_path: Path) -> None:
    """`discover p1 p2 p3 --cluster local:2` on one data root: a worker SIGKILLed mid-task, Dask
    runs its task again, and the rerun fetches only what was in the air — the requests made are
    the cache's entries plus at most a few. Each report names its worker; the exit code is the
    worst of the runs (0)."""
    with SandboxServer(faults=(), sec_block_seconds=5, latency_ms=60) as sandbox:
        url = sandbox.url
        root = data_root(tmp_path, "cluster", ["p1", "p2", "p3"])
        proc = start(root, url, "discover", "p1", "p2", "p3", "--cluster", "local:2")
        cli = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while len(worker_pids(cli)) < 2 or sum(counts(url, "served").values()) < 12:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        os.kill(worker_pids(cli)[0], signal.SIGKILL)
        ((code, body),) = finish([proc])
        assert code == 0, body
        runs = {r["portfolio"]: r for r in body["runs"]}
        assert sorted(runs) == ["p1", "p2", "p3"] and all(
            r["exit_code"] == 0 for r in runs.values()
        )
        for r in runs.values():
            meta = report(r["report_path"])["discovery_metadata"]
            assert (
                meta["worker"] and meta["worker"] == r["worker"] and "127.0.0.1" in meta["worker"]
            )
        made = sum(counts(url).values())
        assert overrun(url) == 0
    kept = sum(entries(root).values())
    assert kept <= made <= kept + 8, (made, kept)  # again: only what was in flight


def test_several_portfolios_without_a_cluster_run_here_one_after_another(tmp_path: Path) -> None:
    with SandboxServer(faults=(), sec_block_seconds=5) as sandbox:
        root = data_root(tmp_path, "seq", ["p1", "p2"])
        ((code, body),) = finish([start(root, sandbox.url, "discover", "p1", "p2")])
    assert code == 0 and body["exit_code"] == 0
    assert [r["portfolio"] for r in body["runs"]] == ["p1", "p2"]
    assert all(r["worker"] is None for r in body["runs"])
    assert report(body["runs"][0]["report_path"])["discovery_metadata"]["worker"] is None
    # the second found the shared part (market context, overlapping tickers) in the cache
    second = report(body["runs"][1]["report_path"])["service_usage"]
    assert sum(u["cache_hits"] for u in second.values()) > 0
