"""A hostile upstream through real sockets against the product client: every answer a malicious
or broken service can send ends as a gap with its reason and detail — bounded in requests, time
and memory — and no credential ever reaches another origin."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from cache.disk.store import DiskCache
from cache.envelope import utcnow
from services import coingecko, fmp, imf, sec_edgar, yahoo_finance
from services.config import sandbox_config
from services.errors import ServiceError
from services.hub import ServiceHub
from services.registry import SPECS
from services.sandbox.faults import FaultSpec
from services.sandbox.hostile import HostileConfig
from services.sandbox.server import SandboxServer
from services.spec import ServiceRequest

pytestmark = pytest.mark.integration
GROWTH = imf.growth_request("NGDP_RPCH", ["USA"])


class Recorder:
    """Another loopback origin that records every request it receives (it should get none)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.seen.append((self.path, dict(self.headers.items())))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"stolen": true}')

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


async def no_sleep(_seconds: float) -> None:
    return None


def hub_for(server: SandboxServer, root: Path, **knobs: Any) -> ServiceHub:
    configs = {
        name: sandbox_config(name, server.url, **knobs.get(name, {"rate_per_second": 200.0}))
        for name in SPECS
    }
    return ServiceHub(
        configs, DiskCache(root / "cache", clock=utcnow), root / "state", sleep=no_sleep
    )


def requests_to(server: SandboxServer, service: str) -> int:
    return int(httpx.get(f"{server.url}/_sandbox/stats").json()["services"][service]["requests"])


async def outcome(hub: ServiceHub, request: ServiceRequest) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        await hub.fetch(request)
    return info.value


@pytest.mark.parametrize(
    ("service", "request_", "mode", "detail", "sent"),
    [
        ("imf", GROWTH, "huge", "too large", 1),
        ("imf", GROWTH, "bomb", "too large", 1),
        ("yahoo_finance", yahoo_finance.chart_request("AAPL"), "bomb", "too large", 1),
        ("imf", GROWTH, "deep", "too deep", 1),
        ("fmp", fmp.profile_request("AAPL"), "redirect_loop", "more than 5 redirects", 6),
        ("yahoo_finance", yahoo_finance.chart_request("AAPL"), "malformed", "malformed", 2),
    ],
)
async def test_hostile_bodies_end_as_bad_response(
    tmp_path: Path, service: str, request_: ServiceRequest, mode: str, detail: str, sent: int
) -> None:
    hostile = HostileConfig(huge_bytes=64 << 20, bomb_bytes=64 << 20)
    with SandboxServer(faults=[FaultSpec(service, mode)], hostile=hostile) as server:
        primed = 0
        if service == "yahoo_finance":  # the session first (the fault hits every request)
            await _prime_yahoo_session(server, tmp_path)
            primed = requests_to(server, service)
            httpx.post(f"{server.url}/_sandbox/faults", json={"service": service, "mode": mode})
        started = time.monotonic()
        async with hub_for(server, tmp_path) as hub:
            error = await outcome(hub, request_)
            assert hub.peek(request_).envelope is None  # nothing hostile was cached
        elapsed = time.monotonic() - started
        assert requests_to(server, service) - primed == sent
    assert error.reason == "bad_response" and detail in error.detail
    assert elapsed < 5.0


async def _prime_yahoo_session(server: SandboxServer, root: Path) -> None:
    """Set the session up before the fault is armed, then count from zero."""
    httpx.delete(f"{server.url}/_sandbox/faults")
    async with hub_for(server, root) as hub:
        await hub.fetch(yahoo_finance.chart_request("MSFT"))
    faults = httpx.get(f"{server.url}/_sandbox/stats").json()
    assert faults["services"]["yahoo_finance"]["session"] == 2


@pytest.mark.parametrize(
    ("service", "request_"),
    [("imf", GROWTH), ("yahoo_finance", yahoo_finance.chart_request("AAPL"))],
    ids=["httpx", "curl"],
)
async def test_a_trickling_service_ends_within_the_deadline(
    tmp_path: Path, service: str, request_: ServiceRequest
) -> None:
    hostile = HostileConfig(trickle_interval_s=0.05, trickle_max_s=30.0)
    knobs = {service: {"rate_per_second": 200.0, "timeout_seconds": 0.5}}  # deadline 1 s
    with SandboxServer(faults=(), hostile=hostile) as server:
        if service == "yahoo_finance":
            await _prime_yahoo_session(server, tmp_path)
        httpx.post(f"{server.url}/_sandbox/faults", json={"service": service, "mode": "trickle"})
        started = time.monotonic()
        async with hub_for(server, tmp_path, **knobs) as hub:
            error = await outcome(hub, request_)
        elapsed = time.monotonic() - started
    assert error.reason == "bad_response" and "too slow" in error.detail
    assert elapsed < 3.0  # one deadline, not a retry per trickle


class HeaderTrickler:
    """A loopback origin that sends its status line and headers a byte at a time, forever:
    every read succeeds, so only a deadline for the whole request can end it."""

    def __init__(self, interval: float = 0.05) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.interval = interval
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + b"x-pad: " + b"a" * 10_000
        with conn:
            for byte in head:
                if self.stop.wait(self.interval):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


async def test_trickled_headers_end_within_the_deadline(tmp_path: Path) -> None:
    trickler = HeaderTrickler()
    configs = {
        name: sandbox_config(name, trickler.url, rate_per_second=200.0, timeout_seconds=0.5)
        for name in SPECS
    }
    hub = ServiceHub(
        configs, DiskCache(tmp_path / "cache", clock=utcnow), tmp_path / "state", sleep=no_sleep
    )
    try:
        started = time.monotonic()
        async with hub:
            error = await outcome(hub, GROWTH)
        elapsed = time.monotonic() - started
    finally:
        trickler.close()
    assert error.reason == "bad_response" and "too slow" in error.detail
    assert elapsed < 3.0  # one deadline per request, not one per read


async def test_a_stalled_service_owes_gaps_not_silence(tmp_path: Path) -> None:
    """Every item of a trickling service ends as a gap: a few too-slow answers open the
    breaker, the rest fail fast."""
    hostile = HostileConfig(trickle_interval_s=0.05, trickle_max_s=30.0)
    knobs = {"sec_edgar": {"rate_per_second": 200.0, "timeout_seconds": 0.25}}
    with SandboxServer(faults=[FaultSpec("sec_edgar", "trickle")], hostile=hostile) as server:
        started = time.monotonic()
        async with hub_for(server, tmp_path, **knobs) as hub:
            reasons = [
                (await outcome(hub, sec_edgar.submissions_request(str(cik)))).reason
                for cik in range(1, 31)
            ]
        elapsed = time.monotonic() - started
        assert requests_to(server, "sec_edgar") <= SPECS["sec_edgar"].breaker_threshold + 1
    assert len(reasons) == 30 and set(reasons) <= {"bad_response", "circuit_open"}
    assert "circuit_open" in reasons
    assert elapsed < 10.0


@pytest.mark.parametrize(
    ("service", "request_", "secret_in"),
    [
        ("fmp", fmp.profile_request("AAPL"), "query"),
        ("coingecko", coingecko.global_request(), "header"),
        ("sec_edgar", sec_edgar.company_tickers_request(), "header"),
    ],
)
async def test_an_offsite_redirect_never_reaches_the_other_origin(
    tmp_path: Path, recorder: Recorder, service: str, request_: ServiceRequest, secret_in: str
) -> None:
    secret = "Jane Doe jane@example.org" if service == "sec_edgar" else "OFFSITE-KEY-1"
    hostile = HostileConfig(offsite_url=recorder.url)
    knobs = {service: {"rate_per_second": 200.0, "credential": secret}}
    with SandboxServer(faults=[FaultSpec(service, "redirect_offsite")], hostile=hostile) as server:
        async with hub_for(server, tmp_path, **knobs) as hub:
            error = await outcome(hub, request_)
        assert requests_to(server, service) == 1
    assert error.reason == "bad_response" and "another origin" in error.detail
    assert secret not in error.detail
    assert recorder.seen == []  # nothing — and so no key or identity — went there


async def test_nonfinite_numbers_keep_every_filing(tmp_path: Path) -> None:
    with SandboxServer(faults=()) as server:
        async with hub_for(server, tmp_path / "clean") as hub:
            ciks = (await hub.fetch(sec_edgar.company_tickers_request())).payload
            cik = sec_edgar.parse_company_tickers(ciks)["AAPL"]
            request = sec_edgar.submissions_request(cik)
            clean = sec_edgar.parse_submissions((await hub.fetch(request)).payload)
        httpx.post(
            f"{server.url}/_sandbox/faults", json={"service": "sec_edgar", "mode": "nonfinite"}
        )
        raw = httpx.get(
            f"{server.url}/sec_edgar{request.path}", headers={"User-Agent": "J Doe j@x.org"}
        ).text
        assert "NaN" in raw and "Infinity" in raw
        async with hub_for(server, tmp_path / "hostile") as hub:
            result = await hub.fetch(request)
    assert result.status == "ok"
    assert clean and sec_edgar.parse_submissions(result.payload) == clean


RSS_PROBE = """
import asyncio, json, resource, sys
from pathlib import Path
from cache.disk.store import DiskCache
from services import imf, yahoo_finance
from services.config import sandbox_config
from services.errors import ServiceError
from services.hub import ServiceHub
from services.registry import SPECS

url, root, service = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
request = {"imf": imf.growth_request("NGDP_RPCH", ["USA"]),
           "yahoo_finance": yahoo_finance.chart_request("AAPL")}[service]

async def main():
    configs = {n: sandbox_config(n, url, rate_per_second=200.0) for n in SPECS}
    async def nap(_s):
        return None
    async with ServiceHub(configs, DiskCache(root / "cache"), root / "state", sleep=nap) as hub:
        if service == "yahoo_finance":
            await hub._clients[service].open()  # libcurl loaded before the baseline
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            await hub.fetch(request)
            outcome = "ok"
        except ServiceError as exc:
            outcome = exc.detail
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"outcome": outcome, "growth_mb": (peak - base) / 1024}))

asyncio.run(main())
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("service", "mode"),
    [("imf", "bomb"), ("imf", "huge"), ("yahoo_finance", "bomb"), ("yahoo_finance", "huge")],
)
def test_peak_rss_stays_bounded_under_hostile_bodies(
    tmp_path: Path, service: str, mode: str
) -> None:
    """256 MB bodies (a gzip bomb of ~250 KB on the wire, or a plain endless one): the process
    grows by a few caps at most, never by the body's size."""
    hostile = HostileConfig(huge_bytes=256 << 20, bomb_bytes=256 << 20)
    with SandboxServer(faults=(), hostile=hostile) as server:
        if service == "yahoo_finance":
            import asyncio

            asyncio.run(_prime_yahoo_session(server, tmp_path))
        httpx.post(f"{server.url}/_sandbox/faults", json={"service": service, "mode": mode})
        done = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, server.url, str(tmp_path), service],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "too large" in result["outcome"]
    assert result["growth_mb"] < 48, result  # caps: 4 MB (IMF), 8 MB (chart)
