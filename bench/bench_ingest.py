"""Benchmark stage 1 (ingest) on generated trade histories in the real 27-column format.

Prints these figures and their goals:
- time of `ingest()` as a ratio to a plain `pandas.read_csv(chunksize=…, usecols=<same columns>)`
  loop over the same file (goal ≤ 1.5×); best of N runs each, wall clock, plus the CPU-time
  ratio, which is steadier on a busy machine;
- the whole ingest with issue 14's sections: `ingest()` plus the realized drawdown from its exit
  order and the per-strategy / monthly folds (compare with the `ingest()` figure of the commit
  before issue 14: goal ≤ 1.5× of it);
- peak RSS of a fresh process that ingests the file and computes those sections (≤ 200 MB);
- growth of that peak from 1M to 5M rows (goal < 25 MB beyond the 8-byte digest kept per
  distinct Position_UUID for the duplicate check, i.e. 32 MB for 4M more rows).

Files go to bench/_work/ (git-ignored) and are reused when their size already matches.
BENCH_QUICK=1 uses 100k / 500k rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from discovery.ingest import CHUNK_ROWS
from services.sandbox.portfolios import synthetic_tickers, write_trades_csv

WORK = Path(__file__).resolve().parent / "_work"
ROOT = Path(__file__).resolve().parents[1]
TICKERS = 500
RATIO_GOAL = 1.5
RSS_GOAL_MB = 200.0
GROWTH_GOAL_MB = 25.0
DIGEST_BYTES = 8

# Peak RSS is read from /proc/self/status VmHWM (per address space, so it starts afresh at exec);
# ru_maxrss would carry over the parent's peak into a forked child on Linux.
_CHILD = """
import json, resource, sys, time
from pathlib import Path
from discovery.ingest.trades import ingest

def peak_mb():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

before = peak_mb()
start = time.perf_counter()
book = ingest(Path(sys.argv[1]), chunk_rows=int(sys.argv[2]))
from discovery.ingest.drawdown import realized_drawdowns
realized_drawdowns(book, {})
book.strategy_performance({})
book.monthly({})
elapsed = time.perf_counter() - start
print(json.dumps({"rows": book.rows_read, "seconds": elapsed, "peak_mb": peak_mb(),
                  "import_mb": before}))
"""


def _dataset(rows: int) -> Path:
    path = WORK / f"trades_{rows}.csv"
    marker = path.with_suffix(".rows")
    if not (path.exists() and marker.exists() and marker.read_text() == str(rows)):
        start = time.perf_counter()
        write_trades_csv(path, rows, synthetic_tickers(TICKERS), seed=rows)
        marker.write_text(str(rows))
        print(f"  generated {path.name}: {rows:,} rows in {time.perf_counter() - start:.1f} s")
    return path


def _best(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds) over `repeats` runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def _plain_loop(path: Path) -> None:
    from discovery.ingest.trades import USED_COLUMNS

    present = set(pd.read_csv(path, nrows=0).columns)
    columns = [c for c in USED_COLUMNS if c in present]
    for _chunk in pd.read_csv(path, chunksize=CHUNK_ROWS, usecols=columns):
        pass


def _child_peak(path: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(CHUNK_ROWS)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _sections(path: Path) -> None:
    from discovery.ingest.drawdown import realized_drawdowns
    from discovery.ingest.trades import ingest

    book = ingest(path, chunk_rows=CHUNK_ROWS)
    realized_drawdowns(book, {})
    book.strategy_performance({})
    book.monthly({})
    book.exits.close()


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    from discovery.ingest.trades import ingest

    quick = os.environ.get("BENCH_QUICK") == "1"
    small, large = (100_000, 500_000) if quick else (1_000_000, 5_000_000)
    repeats = 3
    print(f"bench_ingest: {small:,} and {large:,} rows, {TICKERS} tickers, chunk {CHUNK_ROWS:,}")
    WORK.mkdir(parents=True, exist_ok=True)
    small_path = _dataset(small)
    size_mb = small_path.stat().st_size / 1e6

    plain_wall, plain_cpu = _best(lambda: _plain_loop(small_path), repeats)
    ingest_wall, ingest_cpu = _best(lambda: ingest(small_path, chunk_rows=CHUNK_ROWS), repeats)
    ratio = ingest_wall / plain_wall
    print(f"  file: {size_mb:.0f} MB")
    best = f"(best of {repeats})"
    print(f"  plain read_csv loop : {plain_wall:6.2f} s wall  {plain_cpu:6.2f} s CPU {best}")
    print(f"  ingest()            : {ingest_wall:6.2f} s wall  {ingest_cpu:6.2f} s CPU {best}")
    print(
        f"  ratio ingest/plain  : {ratio:.2f}x wall, {ingest_cpu / plain_cpu:.2f}x CPU "
        f"(goal <= {RATIO_GOAL}x) {_verdict(ratio <= RATIO_GOAL)}"
    )
    print(f"  throughput          : {small / ingest_wall:,.0f} rows/s")
    whole_wall, whole_cpu = _best(lambda: _sections(small_path), repeats)
    print(
        f"  ingest + drawdown + folds: {whole_wall:6.2f} s wall  {whole_cpu:6.2f} s CPU {best} "
        f"(goal <= {RATIO_GOAL}x the ingest() of before issue 14)"
    )

    first = _child_peak(small_path)
    print(
        f"  peak RSS, {small:,} rows (fresh process): {first['peak_mb']:.1f} MB "
        f"(after imports {first['import_mb']:.1f} MB; goal <= {RSS_GOAL_MB:.0f} MB) "
        f"{_verdict(first['peak_mb'] <= RSS_GOAL_MB)}"
    )
    large_path = _dataset(large)
    second = _child_peak(large_path)
    growth = second["peak_mb"] - first["peak_mb"]
    digests_mb = (large - small) * DIGEST_BYTES / 2**20
    print(
        f"  peak RSS, {large:,} rows (fresh process): {second['peak_mb']:.1f} MB "
        f"in {second['seconds']:.1f} s"
    )
    print(
        f"  RSS growth {small:,} -> {large:,} rows: {growth:+.1f} MB "
        f"(goal < {GROWTH_GOAL_MB:.0f} MB + {digests_mb:.0f} MB of Position_UUID digests) "
        f"{_verdict(growth < GROWTH_GOAL_MB + digests_mb)}"
    )


if __name__ == "__main__":
    main()
