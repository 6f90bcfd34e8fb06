"""Cache benchmarks (issue 3).

1. get/set throughput of `DiskNamespace` against raw `diskcache.Cache` on the same payloads:
   - raw, diskcache defaults (pickle, least-recently-stored: reads take no write lock);
   - raw, the store's own diskcache settings (least-recently-used, tag index) — the like-for-like
     figure: what the envelope, its sha256, the redaction and the counters cost.
   Goal: store ≥ 0.7× raw.
2. `build_cache_report` over 10,000 entries in 5 namespaces. Goal: < 2 s.
3. Planning's peek over chart-sized entries (a year of daily bars, ~40 kB): the header-only
   peek (hash checked, payload not decoded) against a read that decodes the payload, which is
   what a peek cost before. Goal: the peek is cheaper.

`BENCH_QUICK=1` runs smaller sizes.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import diskcache

from cache.disk.store import DiskNamespace
from cache.keys import derive_key
from cache.report import build_cache_report

SERVICES = ("yahoo_finance", "fmp", "alpha_vantage", "sec_edgar", "fred")


def profile_payload(i: int) -> list[dict[str, Any]]:
    """About 1 kB, the shape of an FMP profile answer."""
    return [
        {
            "symbol": f"T{i:05d}",
            "companyName": f"Company {i} Holdings Inc.",
            "price": 100.0 + i % 97,
            "beta": 1.0 + (i % 13) / 10,
            "mktCap": 1_000_000_000 + i * 7919,
            "sector": ("Technology", "Energy", "Healthcare", "Financial Services")[i % 4],
            "industry": "Software - Infrastructure",
            "country": "US",
            "exchange": "NASDAQ",
            "currency": "USD",
            "ipoDate": "1999-01-22",
            "isEtf": False,
            "isActivelyTrading": True,
            "description": "A synthetic company used to measure the cache. " * 8,
        }
    ]


def _time(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_throughput(n: int, workdir: Path, chunk: int = 250) -> dict[str, float]:
    """ops/s of each cache on the same keys and payloads.

    The three caches take turns chunk by chunk (`chunk` operations each), so a load spike on a
    shared machine hits all of them alike instead of skewing one figure.
    """
    keys = [derive_key("fmp", "profile", {"symbol": f"T{i:05d}"}) for i in range(n)]
    payloads = [profile_payload(i) for i in range(n)]
    ttl = timedelta(days=7)
    store = DiskNamespace(workdir / "store" / "fmp", "fmp")
    raw = diskcache.Cache(str(workdir / "raw_default"))
    same = diskcache.Cache(
        str(workdir / "raw_same"),
        timeout=60,
        eviction_policy="least-recently-used",
        tag_index=True,
        disk_min_file_size=1 << 20,
    )

    def put(k: str, p: Any) -> None:
        store.put(k, p, dataset="profile", ttl=ttl, request={"symbol": k})

    setters: dict[str, Callable[[str, Any], Any]] = {
        "store": put,
        "raw_default": raw.set,
        "raw_same": lambda k, p: same.set(k, p, tag=1),
    }
    getters: dict[str, Callable[[str], Any]] = {
        "store": store.get,
        "raw_default": raw.get,
        "raw_same": same.get,
    }
    spent: dict[str, float] = {}
    for op, fns in (("set", setters), ("get", getters)):
        for start in range(0, n, chunk):
            cols: list[list[Any]] = [keys[start : start + chunk]]
            if op == "set":
                cols.append(payloads[start : start + chunk])
            for name, fn in fns.items():
                label = f"{name}_{op}"
                spent[label] = spent.get(label, 0.0) + _time(
                    lambda fn=fn, cols=cols: _each(fn, *cols)
                )
    store.close()
    raw.close()
    same.close()
    return {label: n / seconds for label, seconds in spent.items()}


def _each(fn: Callable[..., Any], *columns: list[Any]) -> None:
    for args in zip(*columns, strict=True):
        fn(*args)


def build_report_fixture(root: Path, total: int) -> None:
    """`total` entries over 5 namespaces; in odd namespaces a third of them have expired."""
    per = total // len(SERVICES)
    payload = profile_payload(0)
    written_at = datetime.now(UTC) - timedelta(hours=2)
    for s_i, service in enumerate(SERVICES):
        store = DiskNamespace(root / service, service, clock=lambda: written_at)
        for i in range(per):
            key = derive_key(service, "profile", {"symbol": f"T{i:05d}"})
            short = s_i % 2 == 1 and i % 3 == 0
            ttl = timedelta(hours=1) if short else timedelta(days=7)
            store.put(key, payload, dataset="profile", ttl=ttl)
            if i % 4 == 0:
                store.get(key)
        store.record_last_run("bench")
        store.close()


def chart_payload(i: int, bars: int = 252) -> dict[str, Any]:
    """About 40 kB, the shape of a Yahoo chart answer over a year of daily bars."""
    base = 1_700_000_000
    return {
        "chart": {
            "result": [
                {
                    "meta": {"symbol": f"T{i:05d}", "currency": "USD"},
                    "timestamp": [base + d * 86_400 for d in range(bars)],
                    "indicators": {
                        "quote": [
                            {
                                k: [100.0 + (d * 7 + i) % 13 + j / 10 for d in range(bars)]
                                for j, k in enumerate(("open", "high", "low", "close"))
                            }
                            | {"volume": [1_000_000 + d * 17 for d in range(bars)]}
                        ]
                    },
                }
            ],
            "error": None,
        }
    }


def bench_peek(n: int, workdir: Path) -> dict[str, float]:
    """Seconds for `n` planning peeks: header-only, and with the payload decoded."""
    keys = [derive_key("yahoo_finance", "chart", {"symbol": f"T{i:05d}"}) for i in range(n)]
    with DiskNamespace(workdir / "peek" / "yahoo_finance", "yahoo_finance") as store:
        for i, key in enumerate(keys):
            store.put(key, chart_payload(i), dataset="chart", ttl=timedelta(days=1))
        header = _time(lambda: _each(store.peek, keys))
        decoded = _time(lambda: _each(lambda k: store.peek(k).envelope.payload, keys))  # type: ignore[union-attr]
    return {"header_only": header, "decoded": decoded}


def main() -> None:
    quick = os.environ.get("BENCH_QUICK") == "1"
    n = 1_000 if quick else 5_000
    report_entries = 2_000 if quick else 10_000
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        workdir = Path(tmp)
        f = bench_throughput(n, workdir)
        print(f"cache throughput over {n} entries (~1 kB JSON payloads), ops/s:")
        for op in ("set", "get"):
            store = f[f"store_{op}"]
            default = f[f"raw_default_{op}"]
            same = f[f"raw_same_{op}"]
            print(
                f"  {op}: store {store:,.0f} | raw diskcache (same settings) {same:,.0f} "
                f"→ ratio {store / same:.2f}× | raw diskcache (defaults) {default:,.0f} "
                f"→ ratio {store / default:.2f}×  (goal ≥ 0.70×)"
            )
        peeks = 200 if quick else 1_000
        p = bench_peek(peeks, workdir)
        print(
            f"planning peek over {peeks} chart entries (~40 kB): header-only "
            f"{p['header_only'] * 1000:.0f} ms, with the payload decoded "
            f"{p['decoded'] * 1000:.0f} ms → {p['decoded'] / p['header_only']:.1f}× cheaper"
            " (goal > 1×)"
        )
        root = workdir / "report" / "cache"
        build_report_fixture(root, report_entries)
        now = datetime.now(UTC)
        start = time.perf_counter()
        report = build_cache_report(root, now=now)
        elapsed = time.perf_counter() - start
        t = report["totals"]
        print(
            f"cache report over {t['entries']:,} entries in {t['namespaces']} namespaces: "
            f"{elapsed:.2f} s (goal < 2 s); {t['expired']:,} expired, "
            f"{t['reclaimable_bytes']:,} bytes reclaimable"
        )


if __name__ == "__main__":
    main()
