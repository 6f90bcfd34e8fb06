"""How many requests per second the sandbox serves (goal: ≥ 2,000 req/s on 2 cores, latency 0).

The sandbox runs in its own process (limits off, no latency, no faults), exactly as
`tradescout sandbox` does; this process is the load generator: a minimal asyncio HTTP/1.1
keep-alive client over many connections (cheaper per request than httpx, so the figure measures
the server, not the client). Three mixes:

- warm: a rotating set of real endpoint calls across all seven services (replies cached);
- cold: every request distinct (Yahoo `period1/period2` windows never asked before), so each
  one computes and encodes a fresh payload;
- admin: `/_sandbox/health`, the framework's floor.

`BENCH_QUICK=1` runs shorter.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import time
from collections.abc import Callable, Iterator

import psutil

from services.sandbox.universe import equity_symbols

GOAL_RPS = 2000.0


def _serve(port: int) -> None:
    from services.sandbox.server import serve_forever

    # endpoint throughput: the defences (Yahoo's browser session) are the product's concern
    serve_forever("127.0.0.1", port, 0, (), enforce_limits=False, defences=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def warm_paths() -> Iterator[str]:
    symbols = equity_symbols(us_only=True)[:60]
    paths: list[str] = []
    for i, sym in enumerate(symbols):
        paths.append(f"/yahoo_finance/v8/finance/chart/{sym}?range=1y&interval=1d")
        paths.append(f"/fmp/stable/profile?symbol={sym}&apikey=sandbox-key")
        if i % 3 == 0:
            paths.append(f"/alpha_vantage/query?function=OVERVIEW&symbol={sym}&apikey=k")
    paths += [
        "/fred/fred/series/observations?series_id=FEDFUNDS&api_key=k&file_type=json"
        "&observation_start=2020-01-01",
        "/fred/fred/series/observations?series_id=DGS10&api_key=k&file_type=json"
        "&observation_start=2025-01-01",
        "/coingecko/api/v3/simple/price?ids=bitcoin,ethereum,solana&vs_currencies=usd"
        "&include_market_cap=true&include_24hr_vol=true&include_24hr_change=true",
        "/coingecko/api/v3/global",
        "/imf/external/datamapper/api/v1/NGDP_RPCH/USA/DEU/JPN",
        "/sec_edgar/files/company_tickers.json",
    ]
    while True:
        yield from paths


def cold_paths() -> Iterator[str]:
    symbols = equity_symbols()
    base = 1_700_000_000
    n = 0
    while True:
        sym = symbols[n % len(symbols)]
        start = base + (n // len(symbols)) * 86_400 + n % 977
        yield (
            f"/yahoo_finance/v8/finance/chart/{sym}?period1={start}&period2={start + 90 * 86_400}"
            "&interval=1d"
        )
        n += 1


def admin_paths() -> Iterator[str]:
    while True:
        yield "/_sandbox/health"


async def _worker(
    port: int, paths: Iterator[str], deadline: float, counts: list[int], failures: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ua = b"User-Agent: tradescout-bench bench@example.invalid\r\n"
    try:
        while time.perf_counter() < deadline:
            path = next(paths)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: sandbox\r\n".encode() + ua + b"\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if status >= 400:
                failures[0] += 1
            counts[0] += 1
    finally:
        writer.close()


async def _load(
    port: int, make_paths: Callable[[], Iterator[str]], seconds: float, conns: int
) -> tuple[float, int, int]:
    """(requests/s, requests, non-2xx) of `conns` keep-alive connections for `seconds`."""
    paths = make_paths()
    counts, failures = [0], [0]
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_worker(port, paths, deadline, counts, failures) for _ in range(conns)))
    return counts[0] / (time.perf_counter() - started), counts[0], failures[0]


def _wait_ready(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("sandbox did not start")


def main() -> None:
    quick = os.environ.get("BENCH_QUICK") == "1"
    seconds = 2.0 if quick else 6.0
    conns = 32
    port = _free_port()
    ctx = multiprocessing.get_context("spawn")
    server = ctx.Process(target=_serve, args=(port,), daemon=True)
    server.start()
    try:
        _wait_ready(port)
        # Prime: one pass over the warm set so "warm" measures steady state.
        asyncio.run(_load(port, warm_paths, 1.0 if quick else 2.0, 8))
        print(
            f"sandbox throughput ({os.cpu_count()} cores, {conns} connections, "
            "latency 0, limits off)"
        )
        proc = psutil.Process(server.pid)
        results = {}
        for name, make in (("warm", warm_paths), ("cold", cold_paths), ("admin", admin_paths)):
            before, own = proc.cpu_times(), time.process_time()
            rps, requests, failures = asyncio.run(_load(port, make, seconds, conns))
            after, own = proc.cpu_times(), time.process_time() - own
            cpu = (after.user + after.system) - (before.user + before.system)
            capacity = requests / cpu if cpu > 0 else float("inf")
            results[name] = (rps, capacity)
            print(
                f"  {name:5s} {rps:6.0f} req/s measured | server {cpu / requests * 1e6:5.0f} µs CPU"
                f"/request = {capacity:5.0f} req/s per core | load generator "
                f"{own / requests * 1e6:4.0f} µs/request | {failures} non-2xx"
            )
        rps, capacity = results["warm"]
        print(
            f"  warm vs goal {GOAL_RPS:.0f} req/s: measured {rps / GOAL_RPS:.2f}x, "
            f"server-CPU bound {capacity / GOAL_RPS:.2f}x (the machine is shared: the CPU-bound "
            "figure is the stable one)"
        )
    finally:
        server.terminate()
        server.join(10)


if __name__ == "__main__":
    main()
