"""Discovery end to end against the sandbox (issue 6 goals), as the user runs it: the CLI in a
subprocess, the sandbox on loopback with 50 ms latency and its real limits, default client limits.

Per portfolio (the demo; generated 200- and 500-ticker ones unless BENCH_QUICK=1):
- cold: 429s (must be 0), network requests vs planned, wall time vs the rate-limit floor
  (max over services of requests ÷ client rate; goal ≤ 1.2 × floor + 1 s), peak RSS;
- warm: network requests (must be 0) and whole-process wall time (median of 9), as a ratio to
  the import floor `python -c "import pandas, httpx"` (median of 9, one run just before each
  warm run; issue 13: demo ≤ 1.4×, 200 tickers ≤ 3×, 500 tickers ≤ 4×); the median of each
  run's own ratio to the floor run beside it is printed too.

The package is byte-compiled first and the runs may write bytecode (as an installed package
has its .pyc, like pandas and httpx in the floor): PYTHONDONTWRITEBYTECODE would otherwise make
every run compile ~120 modules from source (~0.1 s) that no user's run compiles.

Run: `python -m bench discovery` (or `python -m bench.bench_discovery`).
"""

from __future__ import annotations

import compileall
import json
import os
import shutil
import statistics
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

QUICK = os.environ.get("BENCH_QUICK") == "1"
REPO = Path(__file__).resolve().parents[1]
LATENCY_MS = 50.0
FLOOR_CMD = [sys.executable, "-c", "import pandas, httpx"]
# Issue 13's warm goals, as multiples of the import floor.
WARM_GOALS = {"demo": 1.4, "p200": 3.0, "big": 4.0}
WARM_RUNS = 9  # pairs of (floor, warm run): a shared VM's floor alone moves by ±15 % run to run


def cli() -> list[str]:
    exe = Path(sys.executable).with_name("tradescout")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "discovery.cli"]


def cli_env(url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRADESCOUT_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["TRADESCOUT_SANDBOX_URL"] = url
    return env


def stats(url: str) -> dict[str, dict[str, int]]:
    services: dict[str, dict[str, int]] = httpx.get(f"{url}/_sandbox/stats").json()["services"]
    return services


def diff(
    after: dict[str, dict[str, int]], before: dict[str, dict[str, int]], field: str
) -> dict[str, int]:
    return {k: after[k][field] - before.get(k, {}).get(field, 0) for k in after}


def floors(requests: dict[str, int]) -> dict[str, float]:
    """Seconds each service needs at its default client rate (the rate-limit floor)."""
    return {k: n / SPECS[k].rate_per_second for k, n in requests.items() if n}


def demo_root(tmp: Path) -> Path:
    root = tmp / "demo" / "data"
    shutil.copytree(REPO / "data" / "raw", root / "raw")
    for sub in ("fundamental_analysis", "sector_analysis"):
        src = REPO / "data" / "outputs" / sub
        if src.is_dir():
            shutil.copytree(src, root / "outputs" / sub)
    return root


def generated_root(tmp: Path, count: int, name: str = "big") -> Path:
    """`count` US sandbox equities, ~2 trades each; the last `count` rows are open positions
    (so about half the trades are open, one per ticker)."""
    root = tmp / name / "data"
    tickers = equity_symbols(us_only=True)[:count]
    write_trades_csv(root / "raw" / "trade_history" / f"{name}.csv", 2 * count, tickers, seed=11)
    return root


def run_cli(args: list[str], url: str, cwd: Path) -> tuple[float, dict[str, Any], int]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*cli(), *args], env=cli_env(url), cwd=cwd, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t0
    try:
        body: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        body = {"stdout": proc.stdout[-500:], "stderr": proc.stderr[-500:]}
    return wall, body, proc.returncode


def import_floor() -> float:
    """Wall time of one `python -c "import pandas, httpx"`: what any run of ours pays."""
    t0 = time.perf_counter()
    subprocess.run(FLOOR_CMD, check=True, env=cli_env(""))
    return time.perf_counter() - t0


def bench_portfolio(url: str, root: Path, name: str, warm_runs: int) -> tuple[float, float, float]:
    """(cold ÷ rate-limit floor, warm median, import-floor median). Each warm run is paired
    with a floor run just before it, so a machine whose speed drifts (a shared VM) moves both
    sides of the ratio alike. Prints the figures as it goes."""
    httpx.post(f"{url}/_sandbox/reset")
    args = ["discover", name, "--data-root", str(root), "--json"]
    before = stats(url)
    wall, body, code = run_cli(args, url, root.parent)
    after = stats(url)
    requests = diff(after, before, "requests")
    limited = diff(after, before, "rate_limited")
    report: dict[str, Any] = {}
    if body.get("report_path"):
        report = json.loads(Path(body["report_path"]).read_text("utf-8"))
    usage = report.get("service_usage", {})
    planned = sum(int(u.get("planned", 0)) for u in usage.values())
    network = sum(int(u.get("network_requests", 0)) for u in usage.values())
    floor = floors(requests)
    worst = max(floor.values(), default=0.0)
    rss = report.get("discovery_metadata", {}).get("peak_rss_mb")
    print(f"[{name}] cold: exit {code}, wall {wall:.1f} s")
    print(
        f"  sandbox requests {sum(requests.values())} ({requests}); 429s {sum(limited.values())}"
        f" ({ {k: v for k, v in limited.items() if v} or 'none' })"
    )
    print(
        f"  client: planned {planned}, network {network} (ratio "
        f"{network / planned if planned else float('nan'):.3f}); per service planned/network: "
        + ", ".join(
            f"{k} {u.get('planned')}/{u.get('network_requests')}"
            for k, u in usage.items()
            if u.get("network_requests") or u.get("planned")
        )
    )
    print("  floor per service (s): " + ", ".join(f"{k} {v:.1f}" for k, v in floor.items()))
    goal = 1.2 * worst + 1.0
    print(
        f"  floor {worst:.1f} s → goal ≤ {goal:.1f} s; measured {wall:.1f} s "
        f"({wall / worst if worst else float('nan'):.2f} × floor) "
        f"{'OK' if wall <= goal else 'OVER'}"
    )
    print(f"  peak RSS {rss} MB")
    cold_ratio = wall / worst if worst else float("nan")
    walls: list[float] = []
    import_walls: list[float] = []
    warm_requests = 0
    for _ in range(warm_runs):
        import_walls.append(import_floor())
        before = stats(url)
        wall, body, code = run_cli(args, url, root.parent)
        warm_requests += sum(diff(stats(url), before, "requests").values())
        walls.append(wall)
    if walls:
        med = statistics.median(walls)
        pairs = sorted(w / f for w, f in zip(walls, import_walls, strict=True))
        print(
            f"[{name}] warm ×{len(walls)}: network requests {warm_requests}; wall median "
            f"{med:.2f} s (runs {', '.join(f'{w:.2f}' for w in walls)}); exit {code}; "
            f"import floor beside them {statistics.median(import_walls):.2f} s "
            f"(runs {', '.join(f'{w:.2f}' for w in import_walls)}); each run ÷ its floor: "
            f"median {statistics.median(pairs):.2f}× ({pairs[0]:.2f}–{pairs[-1]:.2f}×)"
        )
        return cold_ratio, med, statistics.median(import_walls)
    return cold_ratio, float("nan"), float("nan")


def main() -> None:
    for package in ("discovery", "services", "cache"):
        compileall.compile_dir(REPO / package, quiet=1)
    with tempfile.TemporaryDirectory(prefix="bench-discovery-") as tmp_name:
        tmp = Path(tmp_name)
        with SandboxServer(latency_ms=LATENCY_MS, faults=()) as server:
            print(f"sandbox on {server.url}, latency {LATENCY_MS:.0f} ms, default limits")
            roots = {"demo": demo_root(tmp)}
            if not QUICK:
                roots["p200"] = generated_root(tmp, 200, name="p200")
                roots["big"] = generated_root(tmp, 500)
            results = {
                name: bench_portfolio(server.url, root, name, warm_runs=WARM_RUNS)
                for name, root in roots.items()
            }
        print("import floor: python -c 'import pandas, httpx', one run before each warm run")
        for name, (_, warm, floor) in results.items():
            ratio = warm / floor
            goal = WARM_GOALS[name]
            print(
                f"  warm {name}: {warm:.2f} s = {ratio:.2f} × floor {floor:.2f} s (goal ≤ {goal}×) "
                f"{'OK' if ratio <= goal else 'OVER'}"
            )
        cold = results["demo"][0]
        verdict = "OK" if cold <= 1.2 else "OVER"
        print(f"  cold demo: {cold:.2f} × rate-limit floor (goal ≤ 1.2×) {verdict}")


if __name__ == "__main__":
    main()
