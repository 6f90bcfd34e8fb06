"""The whole `discover --offline` on the 1M-trade file, as issue 14's last goal states it: the run
with the new sections within 1.5x of the run before issue 14, peak RSS within 200 MB.

The file is `write_trades_csv(path, 1_000_000, synthetic_tickers(20), seed=7)` under
bench/_work/report/ (reused when present; BENCH_QUICK=1: 100k rows). Each run is a fresh
process on a fresh data root (nothing cached), timed from outside; the report's own
`stage_timings_ms` and `peak_rss_mb` are printed with it.

The figure before issue 14 cannot be re-run from this tree. By default the ratio is against
2.36 s (1M trades, peak RSS 149 MB), measured at commit 76b2163 with the same recipe on the
machine of stop 19, idle — it only means something on that kind of machine. To measure both on
the machine at hand, give a checkout of 76b2163 with its own venv:

    git worktree add /tmp/base 76b2163 && python3.11 -m venv /tmp/base/.venv &&
    /tmp/base/.venv/bin/pip install -e /tmp/base
    BENCH_REPORT_BASELINE=/tmp/base python -m bench report

and each run of this tree is paired with a baseline run just before it (a shared VM's speed
drifts by tens of percent within minutes: pairs see the same machine). The run's own stage
timings say where the time went either way.

Run: `python -m bench report` (or `python -m bench.bench_report`).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

QUICK = os.environ.get("BENCH_QUICK") == "1"
WORK = Path(__file__).resolve().parent / "_work" / "report"
ROWS = 100_000 if QUICK else 1_000_000
RUNS = 1 if QUICK else 5
BEFORE_S = 2.36  # whole run at 76b2163 (before issue 14), 1M trades, this machine, idle
RATIO_GOAL = 1.5
RSS_GOAL_MB = 200.0


# On Linux a process's `ru_maxrss` (the report's `peak_rss_mb`) starts at its parent's peak
# when it is forked: the run is started by a small shell that forks it (`"$@"; exit`), so the
# figure is the run's own whatever this process (or `python -m bench`'s others) used.
VIA_SHELL = ["sh", "-c", '"$@"; exit $?', "sh"]
GENERATE = """
import sys
from pathlib import Path
from services.sandbox.portfolios import synthetic_tickers, write_trades_csv
write_trades_csv(Path(sys.argv[1]), int(sys.argv[2]), synthetic_tickers(20), seed=7)
"""


def dataset(rows: int) -> Path:
    path = WORK / f"big{rows}.csv"
    marker = path.with_suffix(".rows")
    if not (path.exists() and marker.exists() and marker.read_text() == str(rows)):
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", GENERATE, str(path), str(rows)], check=True)
        marker.write_text(str(rows))
        print(f"  generated {path.name}: {rows:,} rows in {time.perf_counter() - start:.1f} s")
    return path


BASELINE = os.environ.get("BENCH_REPORT_BASELINE")


def one_run(csv: Path, tree: Path | None = None) -> dict[str, Any]:
    """One fresh-process `discover --offline` on a fresh data root next to the file; with
    `tree`, that checkout's CLI run by its own venv (the baseline)."""
    root = WORK / "run"
    shutil.rmtree(root, ignore_errors=True)
    (root / "raw" / "trade_history").mkdir(parents=True)
    try:  # the 245 MB file is not copied for each run
        os.link(csv, root / "raw" / "trade_history" / csv.name)
    except OSError:
        shutil.copyfile(csv, root / "raw" / "trade_history" / csv.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESCOUT_")}
    python = sys.executable if tree is None else str(tree / ".venv" / "bin" / "python")
    command = [python, "-m", "discovery.cli", "discover", csv.stem, "--offline"]
    started = time.perf_counter()
    done = subprocess.run(
        [*VIA_SHELL, *command, "--data-root", str(root), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=tree,  # `python -m` puts the working folder first on the path
    )
    wall = time.perf_counter() - started
    if done.returncode not in (0, 3):  # 3: gaps (offline, nothing cached), still a report
        raise RuntimeError(f"discover exited {done.returncode}: {done.stderr[-2000:]}")
    report = json.loads(Path(json.loads(done.stdout)["report_path"]).read_text())
    meta = report["discovery_metadata"]
    closed = report.get("closed_trades", [])  # the baseline has no records
    count = closed["count"] if isinstance(closed, dict) else len(closed)
    shutil.rmtree(root, ignore_errors=True)
    return {
        "wall": wall,
        "stages": meta["stage_timings_ms"],
        "peak_mb": meta["peak_rss_mb"],
        "closed": count,
    }


def main() -> None:
    csv = dataset(ROWS)
    runs = []
    before: list[float] = []
    for i in range(RUNS):
        if BASELINE:
            before.append(one_run(csv, Path(BASELINE))["wall"])
            print(f"  baseline run {i + 1}: {before[-1]:.2f} s wall")
        run = one_run(csv)
        runs.append(run)
        stages = ", ".join(f"{k} {v / 1000:.2f}" for k, v in run["stages"].items() if v >= 1)
        print(
            f"  run {i + 1}: {run['wall']:.2f} s wall, peak RSS {run['peak_mb']:.0f} MB, "
            f"{run['closed']:,} closed trades; stages (s): {stages}"
        )
    wall = statistics.median(r["wall"] for r in runs)
    peak = max(r["peak_mb"] for r in runs)
    print(f"discover --offline, {ROWS:,} trades: median wall {wall:.2f} s of {RUNS}")
    if before:
        base = statistics.median(before)
        pairs = sorted(r["wall"] / b for r, b in zip(runs, before, strict=True))
        print(
            f"  vs before issue 14 (76b2163 at {BASELINE}, paired runs, median {base:.2f} s): "
            f"{wall / base:.2f}x (goal <= {RATIO_GOAL}x); median of the {len(pairs)} pairs' "
            f"ratios {statistics.median(pairs):.2f}x ({', '.join(f'{p:.2f}' for p in pairs)})"
        )
    elif QUICK:
        print(f"  (quick: {ROWS:,} rows; the goal is stated for 1M: no ratio)")
    else:
        print(
            f"  vs before issue 14 ({BEFORE_S} s at 76b2163 on stop 19's machine, idle): "
            f"{wall / BEFORE_S:.2f}x (goal <= {RATIO_GOAL}x)"
        )
    print(f"  peak RSS {peak:.0f} MB (goal <= {RSS_GOAL_MB:.0f} MB)")


if __name__ == "__main__":
    main()
