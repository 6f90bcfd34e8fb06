"""Service-hub benchmarks (issue 4): what the resilient client costs and whether it is polite.

1. cache-hit fetch: µs per `hub.fetch` answered from the cache (the warm-run path);
2. network path: requests/s through semaphore → limiter → ceiling → breaker → quota → HTTP on an
   in-process `httpx.MockTransport` (no sockets), i.e. the client's own overhead per request;
3. limiter: N requests at a no-burst rate; the densest 1-second window observed vs the limit;
4. in-flight sharing: 32 concurrent fetches of one request → network calls made.

`BENCH_QUICK=1` shrinks the counts. Run: `python -m bench.bench_services`.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx

from cache import open_cache
from services import yahoo_finance
from services.config import ServiceConfig
from services.hub import ServiceHub

QUICK = os.environ.get("BENCH_QUICK") == "1"
CHART = {
    "chart": {
        "result": [
            {
                "meta": {"symbol": "X", "currency": "USD", "gmtoffset": 0},
                "timestamp": [1763476200 + 86400 * i for i in range(250)],
                "indicators": {
                    "quote": [{k: [100.0 + i for i in range(250)] for k in ("open", "close")}]
                },
            }
        ],
        "error": None,
    }
}


def _hub(root: Path, transport: httpx.AsyncBaseTransport, rate: float) -> ServiceHub:
    configs = {
        "yahoo_finance": ServiceConfig(
            name="yahoo_finance", rate_per_second=rate, max_connections=8
        )
    }
    return ServiceHub(configs, open_cache(root / "cache"), root / "state", transport=transport)


async def _run(root: Path) -> None:
    stamps: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/":  # Yahoo's session: the cookie, then the crumb
            return httpx.Response(404, headers={"Set-Cookie": "A3=d=bench"})
        if request.url.path == "/v1/test/getcrumb":
            return httpx.Response(200, text="BenchCrumb1")
        stamps.append(time.perf_counter())
        await asyncio.sleep(0)
        return httpx.Response(200, json=CHART)

    transport = httpx.MockTransport(handler)
    n = 200 if QUICK else 1000
    requests = [yahoo_finance.chart_request(f"S{i}") for i in range(n)]

    async with _hub(root / "a", transport, rate=100_000.0) as hub:
        started = time.perf_counter()
        await asyncio.gather(*(hub.fetch(r) for r in requests))
        net = time.perf_counter() - started
        started = time.perf_counter()
        for r in requests:
            await hub.fetch(r)
        hits = time.perf_counter() - started
        usage = hub.usage()["yahoo_finance"]
    print(f"network path (mock transport): {n / net:,.0f} req/s, {net / n * 1e6:,.0f} µs/request")
    print(f"cache-hit fetch: {hits / n * 1e6:,.0f} µs/fetch; ratio network/hit {net / hits:.1f}x")
    print(f"counters: network={usage['network_requests']} cache_hits={usage['cache_hits']}")

    rate, count = (10.0, 21) if QUICK else (20.0, 61)
    stamps.clear()
    async with _hub(root / "b", transport, rate=rate) as hub:
        started = time.perf_counter()
        await asyncio.gather(
            *(hub.fetch(yahoo_finance.chart_request(f"L{i}")) for i in range(count))
        )
        elapsed = time.perf_counter() - started
    densest = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    print(
        f"limiter at {rate:g}/s (no burst): {count} requests in {elapsed:.2f} s; "
        f"densest 1 s window {densest} requests (limit {rate:g}); "
        f"{'OK' if densest <= rate + 1 else 'OVER'}"
    )

    calls_before = len(stamps)
    async with _hub(root / "c", transport, rate=100_000.0) as hub:
        same = yahoo_finance.chart_request("SAME")
        await asyncio.gather(*(hub.fetch(same) for _ in range(32)))
    print(f"32 concurrent identical fetches → {len(stamps) - calls_before} network call(s)")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-services-") as tmp:
        asyncio.run(_run(Path(tmp)))


if __name__ == "__main__":
    main()
