"""`make bench`: run every benchmark module in turn (BENCH_QUICK=1 for a short pass).

`python -m bench ingest cache` runs only the named ones.
"""

from __future__ import annotations

import importlib
import sys
import time

BENCHES = (
    "ingest",
    "inventory",
    "cache",
    "services",
    "sandbox",
    "discovery",
    "refresh",
    "team",
    "report",
    "json_lines",
)


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHES)
    unknown = [b for b in chosen if b not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHES)}")
        return 2
    for name in chosen:
        print(f"\n=== bench {name} ===", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.bench_{name}")
        module.main()
        print(f"--- {name} done in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
