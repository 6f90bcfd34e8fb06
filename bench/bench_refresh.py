"""The nightly refresh of a 500-ticker cache (issue 7 goal): against the sandbox on loopback
(50 ms latency, its real limits) with default client limits, the refresh stays within
1.2 × the rate-limit floor (max over services of requests ÷ client rate) with zero 429s.

The cache is built first by a refresh against a second, unlimited sandbox with raised client
rates (seconds, not minutes); the measured refresh then uses a 200-hour horizon so every entry
(7-day FMP profiles and the CIK map included) is due. BENCH_QUICK=1 → 50 tickers.

Run: `python -m bench refresh`.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_discovery import cli, cli_env, diff, floors, generated_root, stats
from services.registry import SERVICE_NAMES
from services.sandbox.server import SandboxServer

QUICK = os.environ.get("BENCH_QUICK") == "1"
LATENCY_MS = 50.0


def refresh(url: str, root: Path, *extra: str) -> tuple[float, dict[str, Any], int]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*cli(), "refresh", "--data-root", str(root), "--json", *extra],
        env=cli_env(url),
        cwd=root.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    try:
        body: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        body = {"stdout": proc.stdout[-500:], "stderr": proc.stderr[-500:]}
    return wall, body, proc.returncode


def main() -> None:
    count = 50 if QUICK else 500
    with tempfile.TemporaryDirectory(prefix="bench-refresh-") as tmp_name:
        tmp = Path(tmp_name)
        root = generated_root(tmp, count, name="nightly")
        fast = tmp / "fast.toml"
        fast.write_text(
            "".join(f"[services.{n}]\nrate_per_second = 500\n\n" for n in SERVICE_NAMES), "utf-8"
        )
        with SandboxServer(enforce_limits=False, faults=()) as builder:
            wall, body, code = refresh(builder.url, root, "--config", str(fast))
            print(
                f"cache built for {count} tickers in {wall:.1f} s (exit {code}, "
                f"refreshed {body.get('refreshed')}, over budget {body.get('skipped_budget')})"
            )
        with SandboxServer(latency_ms=LATENCY_MS, faults=()) as server:
            before = stats(server.url)
            wall, body, code = refresh(server.url, root, "--horizon-hours", "200")
            after = stats(server.url)
        requests = diff(after, before, "requests")
        limited = diff(after, before, "rate_limited")
        floor = floors(requests)
        worst = max(floor.values(), default=0.0)
        print(
            f"refresh of {count} tickers (horizon 200 h): exit {code}, wall {wall:.1f} s; "
            f"refreshed {body.get('refreshed')}, fresh {body.get('skipped_fresh')}, "
            f"over budget {body.get('skipped_budget')}, failed {body.get('failed')}"
        )
        print(f"  budget used {body.get('budget_used')} of {body.get('budget')}")
        print(f"  sandbox requests {sum(requests.values())} ({requests})")
        hit = {k: v for k, v in limited.items() if v}
        print(f"  429s {sum(limited.values())} ({hit or 'none'})")
        print("  floor per service (s): " + ", ".join(f"{k} {v:.1f}" for k, v in floor.items()))
        ratio = wall / worst if worst else float("nan")
        print(
            f"  floor {worst:.1f} s; measured {wall:.1f} s = {ratio:.2f} × floor "
            f"(goal ≤ 1.2) {'OK' if ratio <= 1.2 else 'OVER'}"
        )
        print(f"  report {body.get('report_path')}")


if __name__ == "__main__":
    main()
