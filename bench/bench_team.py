"""Team scale (issue 16): 12 portfolios on 1, 2 and 4 Dask workers against the sandbox, every
worker sharing one redis-server — wall time, requests, 429s and SEC blocks, and the rate-limit
floor of the requests made (the slowest service's requests ÷ its client rate).

What it should show: the shared limits, not the workers, bound the time. More workers overlap
the local work (ingest, planning, report), but every worker takes its pacing slots from the same
queue per service, so wall time stays at the floor and no worker count draws a 429.

Needs `redis-server` on PATH (Debian's package); skipped with a note otherwise.
Run: `python -m bench team` (BENCH_QUICK=1: smaller portfolios, 1 and 2 workers).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from services.registry import SPECS
from services.sandbox.portfolios import write_trades_csv
from services.sandbox.server import SandboxServer
from services.sandbox.universe import equity_symbols
from tests.conftest import RedisServer

QUICK = os.environ.get("BENCH_QUICK") == "1"
PORTFOLIOS = 12
PER_PORTFOLIO = 4 if QUICK else 8
POOL = 16 if QUICK else 40  # distinct tickers over all portfolios: they overlap
WORKERS = (1, 2) if QUICK else (1, 2, 4)
LATENCY_MS = 50.0


def cli() -> list[str]:
    exe = Path(sys.executable).with_name("tradescout")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "discovery.cli"]


def make_root(tmp: Path, name: str) -> Path:
    """12 portfolios over a pool of US equities, each overlapping its neighbours."""
    root = tmp / name / "data"
    pool = equity_symbols(us_only=True)[40 : 40 + POOL]
    step = max(1, POOL // PORTFOLIOS)
    for i in range(PORTFOLIOS):
        tickers = [pool[(i * step + k) % POOL] for k in range(PER_PORTFOLIO)]
        write_trades_csv(
            root / "raw" / "trade_history" / f"p{i:02d}.csv", 2 * PER_PORTFOLIO, tickers, seed=i
        )
    return root


def stats(url: str) -> dict[str, dict[str, int]]:
    services: dict[str, dict[str, int]] = httpx.get(f"{url}/_sandbox/stats").json()["services"]
    return services


def run(url: str, redis: RedisServer, root: Path, workers: int) -> dict[str, Any]:
    httpx.post(f"{url}/_sandbox/reset").raise_for_status()
    redis.flush()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESCOUT_")}
    env.update(TRADESCOUT_SANDBOX_URL=url, TRADESCOUT_REDIS_URL=redis.url)
    names = [f"p{i:02d}" for i in range(PORTFOLIOS)]
    args = ["discover", *names, "--data-root", str(root), "--json", "--cluster", f"local:{workers}"]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*cli(), *args], env=env, cwd=root.parent, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t0
    after = stats(url)
    try:
        body = json.loads(proc.stdout)
    except json.JSONDecodeError:
        body = {"exit_code": proc.returncode, "runs": [], "stderr": proc.stderr[-400:]}
    requests = {k: s["requests"] for k, s in after.items() if s["requests"]}
    floor = {k: n / SPECS[k].rate_per_second for k, n in requests.items()}
    slowest = max(floor, key=lambda k: floor[k]) if floor else "-"
    return {
        "workers": workers,
        "exit": body.get("exit_code"),
        "wall": wall,
        "requests": sum(requests.values()),
        "by_service": requests,
        "429s": sum(s["rate_limited"] for s in after.values()),
        "sec_refused": after["sec_edgar"]["refused"],
        "floor": floor.get(slowest, 0.0),
        "slowest": slowest,
        "workers_seen": len({r.get("worker") for r in body.get("runs", [])}),
    }


def main() -> None:
    if shutil.which("redis-server") is None:
        print("redis-server not found (Debian package redis-server): skipped")
        return
    with tempfile.TemporaryDirectory(prefix="bench-team-") as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp)
        try:
            with SandboxServer(latency_ms=LATENCY_MS, faults=()) as server:
                print(
                    f"sandbox {server.url} (latency {LATENCY_MS:.0f} ms, real limits), redis "
                    f"{redis.url}; {PORTFOLIOS} portfolios × {PER_PORTFOLIO} tickers over "
                    f"{POOL} distinct, default client rates"
                )
                rows = [run(server.url, redis, make_root(tmp, f"w{n}"), n) for n in WORKERS]
        finally:
            redis.kill()
    print(
        f"{'workers':>7} {'exit':>4} {'wall s':>7} {'requests':>8} {'429s':>5} "
        f"{'SEC blocks':>10} {'floor s':>8} {'× floor':>7}  slowest service"
    )
    for r in rows:
        ratio = r["wall"] / r["floor"] if r["floor"] else float("nan")
        print(
            f"{r['workers']:>7} {r['exit']!s:>4} {r['wall']:>7.1f} {r['requests']:>8} "
            f"{r['429s']:>5} {r['sec_refused']:>10} {r['floor']:>8.1f} {ratio:>7.2f}  "
            f"{r['slowest']} ({r['workers_seen']} worker(s) ran tasks)"
        )
    print("requests by service (first row): " + json.dumps(rows[0]["by_service"]))


if __name__ == "__main__":
    main()
