"""`json_lines` on one closed-trade chunk of 10k rows (the most the per-trade pass hands it at
a time), as the report writes them: the compiled interleave (`discovery._interleave`) against
the Python one.

The chunk is the first of a generated 10k-trade file (`write_trades_csv(..., seed=7)`, 20
tickers, under bench/_work/), with the report's currency and benchmark columns added (no
benchmark chart: those two are all null). Each figure is the best of `REPEATS` calls; CPU
time is printed too, steadier on a busy machine.

Run: `python -m bench json_lines` (or `python -m bench.bench_json_lines`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from discovery.ingest.closed_trades import iter_closed_chunks
from discovery.ingest.trades import ingest
from discovery.json_lines import COMPILED, Column, json_lines
from discovery.report.closed import with_benchmark
from services.sandbox.portfolios import synthetic_tickers, write_trades_csv

WORK = Path(__file__).resolve().parent / "_work" / "json_lines"
REPEATS = 30
CHUNK_ROWS = 10_000


def chunk_columns() -> dict[str, Column]:
    path = WORK / f"trades{CHUNK_ROWS}.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_trades_csv(path, CHUNK_ROWS, synthetic_tickers(20), seed=7)
    book = ingest(path)
    chunk = next(iter(iter_closed_chunks(book, chunk_rows=CHUNK_ROWS)))
    return with_benchmark(chunk, None, {t: "USD" for t in chunk.tickers})


def best(call: Callable[[], bytes]) -> tuple[float, float]:
    """The best wall and CPU seconds of `REPEATS` calls."""
    walls, cpus = [], []
    for _ in range(REPEATS):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def main() -> None:
    columns = chunk_columns()
    rows = next(iter(columns.values())).size
    python = json_lines(columns, compiled=False)
    print(f"  {rows:,} rows, {len(columns)} columns, {len(python) / 1e6:.2f} MB of lines")
    py_wall, py_cpu = best(lambda: json_lines(columns, compiled=False))
    print(f"  Python interleave:   {py_wall * 1e3:6.2f} ms wall, {py_cpu * 1e3:6.2f} ms CPU")
    if not COMPILED:
        print("  compiled interleave: not built (pip install -e . builds it)")
        return
    assert json_lines(columns, compiled=True) == python
    c_wall, c_cpu = best(lambda: json_lines(columns, compiled=True))
    print(f"  compiled interleave: {c_wall * 1e3:6.2f} ms wall, {c_cpu * 1e3:6.2f} ms CPU")
    print(f"  {py_wall / c_wall:.1f}x faster (wall), {py_cpu / c_cpu:.1f}x (CPU)")


if __name__ == "__main__":
    main()
