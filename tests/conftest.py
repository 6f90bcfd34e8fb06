"""Fixtures and helpers shared by the test suite: data roots built from the demo inputs (never
from the repo's cache, state or outputs), the sandbox with raised limits, the CLI as a real
subprocess, sandbox statistics, a clock the tests move by hand, and a real redis-server on
127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.registry import CREDENTIAL_ENV, SPECS
from services.sandbox.limits import Window
from services.sandbox.portfolios import write_trades_csv
from services.sandbox.server import SandboxServer
from services.sandbox.universe import equity_symbols

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SERVICES: tuple[str, ...] = tuple(SPECS)
DEMO_DATA = REPO / "data"
TRADESCOUT = Path(sys.executable).parent / "tradescout"
FAST_LIMITS = {name: Window(10_000, 1.0) for name in SERVICES}
FAST_TOML = "".join(
    f"[services.{name}]\nrate_per_second = 200\nmax_connections = 8\n\n" for name in SERVICES
)
SECRET_ENV: tuple[str, ...] = tuple(v for names in CREDENTIAL_ENV.values() for v in names)


def local_tickers() -> set[str]:
    """Tickers with a demo fundamental file (these are covered locally when fresh)."""
    return {
        p.name.rsplit("_", 1)[0] for p in (DEMO_DATA / "outputs/fundamental_analysis").glob("*.md")
    }


def plain_tickers(n: int) -> list[str]:
    """`n` US stocks the sandbox knows (Yahoo, FMP, SEC) that have no local analysis file."""
    have = local_tickers()
    out = [t for t in equity_symbols(us_only=True) if t not in have][:n]
    assert len(out) == n
    return out


def make_root(
    tmp: Path, tickers: Sequence[str], *, name: str = "small", rows: int | None = None
) -> Path:
    """The demo inputs (see `demo_root`) plus a generated portfolio `name` over `tickers`."""
    root = demo_root(tmp)
    write_trades_csv(
        root / "raw" / "trade_history" / f"{name}.csv",
        rows or 2 * len(tickers),
        list(tickers),
        seed=11,
    )
    return root


def fast_config(tmp: Path) -> Path:
    path = tmp / "tradescout.toml"
    path.write_text(FAST_TOML, encoding="utf-8")
    return path


def stats(url: str) -> dict[str, dict[str, int]]:
    answer: dict[str, dict[str, int]] = httpx.get(f"{url}/_sandbox/stats").json()["services"]
    return answer


def requests_by_service(url: str) -> dict[str, int]:
    return {name: s["requests"] for name, s in stats(url).items() if s["requests"]}


def reset(url: str) -> None:
    httpx.post(f"{url}/_sandbox/reset").raise_for_status()


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without credentials or tradescout settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRADESCOUT_") and k not in SECRET_ENV
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_cli(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TRADESCOUT), *args],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def listing(root: Path) -> dict[str, int]:
    """Every path under `root` with its size (directories as -1)."""
    out: dict[str, int] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = -1 if path.is_dir() else path.stat().st_size
    return out


def report_files(root: Path) -> list[Path]:
    return sorted((root / "outputs" / "trade_history" / "discovery").glob("*.json"))


@pytest.fixture
def fast_sandbox() -> Iterator[SandboxServer]:
    """The sandbox with every rate limit raised (pair with `fast_config`)."""
    with SandboxServer(faults=(), rate_limits=FAST_LIMITS) as server:
        yield server


def gaps_of(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    gaps: list[dict[str, Any]] = report["gaps"]
    return gaps


# Friday 2026-11-20 07:30 UTC: the next US close (21:00 UTC) is 13.5 h away, just outside a 12 h
# horizon; FRED/IMF/SEC submissions live 1 day, FMP/AV/CIK map 7 days, CoinGecko 15 minutes.
T0 = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
FAST_WINDOWS = FAST_LIMITS


class MovableClock:
    """A clock the test moves by hand (shared by the hub, the cache and the sandbox)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def demo_root(tmp: Path) -> Path:
    """A copy of the demo data root's inputs only (portfolio `demo`, 32 tickers, 8 open): the
    trade histories and the analysis files, never the cache, state or reports a `make run`
    left in the repository's data/."""
    root = tmp / "data"
    shutil.copytree(REPO / "data" / "raw", root / "raw")
    outputs = REPO / "data" / "outputs"
    for sub in ("fundamental_analysis", "sector_analysis"):
        if (outputs / sub).is_dir():
            shutil.copytree(outputs / sub, root / "outputs" / sub)
    return root


def generated_root(tmp: Path, count: int, *, name: str = "gen", offset: int = 40) -> Path:
    """A data root with one generated portfolio over `count` sandbox equities (every one open)."""
    root = tmp / "data"
    tickers = equity_symbols(us_only=True)[offset : offset + count]
    write_trades_csv(root / "raw" / "trade_history" / f"{name}.csv", 2 * count, tickers, seed=3)
    return root


def fast_services(rate: float = 200.0) -> dict[str, dict[str, Any]]:
    return {name: {"rate_per_second": rate} for name in SERVICES}


def write_fast_config(path: Path, rate: float = 200.0, extra: str = "") -> Path:
    """A tradescout.toml raising every client rate (the sandbox must be raised to match)."""
    lines = [f"[services.{name}]\nrate_per_second = {rate}\n" for name in SERVICES]
    path.write_text("\n".join(lines) + extra, encoding="utf-8")
    return path


def sandbox_stats(url: str) -> dict[str, dict[str, int]]:
    services: dict[str, dict[str, int]] = httpx.get(f"{url}/_sandbox/stats").json()["services"]
    return services


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}


def subjects_of(rows: Sequence[dict[str, Any]], service: str) -> list[str]:
    return [s for r in rows if r["service"] == service for s in r["subjects"]]


BROWSER_HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "sec-ch-ua": '"Chromium";v="131", "Not_A Brand";v="24"',
}


class YahooBrowser(httpx.Auth):
    """For tests that talk to the sandbox with a plain httpx client: requests to its Yahoo go out
    the way a browser's would — browser headers, the session cookie and `crumb=` — so the
    sandbox's Yahoo defences let them through (the first one sets the session up)."""

    requires_response_body = True

    def __init__(self) -> None:
        self.cookie: str | None = None
        self.crumb: str | None = None
        self.setups = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path = request.url.path
        if not path.startswith("/yahoo_finance/"):
            yield request
            return
        request.headers.update(BROWSER_HEADERS)
        if path in ("/yahoo_finance/", "/yahoo_finance/v1/test/getcrumb"):
            yield request
            return
        if self.crumb is None:
            self.setups += 1
            root = request.url.copy_with(path="/yahoo_finance/", query=None)
            cookie = yield httpx.Request("GET", root, headers=BROWSER_HEADERS)
            self.cookie = cookie.headers.get("set-cookie", "").split(";", 1)[0]
            crumb = yield httpx.Request(
                "GET",
                root.copy_with(path="/yahoo_finance/v1/test/getcrumb"),
                headers={**BROWSER_HEADERS, "Cookie": self.cookie},
            )
            self.crumb = crumb.text
        request.headers["Cookie"] = self.cookie or ""
        request.url = request.url.copy_merge_params({"crumb": self.crumb})
        yield request


class RedisServer:
    """A real `redis-server` on 127.0.0.1 (random free port, its own temp dir, no persistence)."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not installed (Debian package redis-server; .ci/run installs it)"
            )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10.0
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def flush(self) -> None:
        """FLUSHALL: an empty server again (between runs that must not share state)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(b"FLUSHALL\r\n")
            conn.recv(16)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-conversation, as a crashed host would."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.kill()


# -- a stand-in for the real services, answering with the recorded real payload shapes ----------
# (tests/fixtures/real/; used through httpx.MockTransport by the property test and over a
# loopback socket by the end-to-end test). Every service sits under `{base}/{service}`.

REAL = FIXTURES / "real"
STANDIN_OUTCOMES = ("ok", "not_found", "refused", "5xx", "timeout", "malformed", "empty")
Answer = tuple[int, dict[str, str], bytes]


def real_payload(name: str) -> Any:
    return json.loads((REAL / name).read_text("utf-8"))


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Answer:
    return (
        status,
        {"content-type": "application/json", **(headers or {})},
        json.dumps(body).encode(),
    )


def _text(status: int, name_or_text: str) -> Answer:
    path = REAL / name_or_text
    text = path.read_text("utf-8") if path.is_file() else name_or_text
    return status, {"content-type": "text/plain"}, text.encode()


def chart_body(symbol: str, today: date, days: int = 400) -> Any:
    """The recorded chart shape for `symbol` with `days` daily bars ending the day before
    `today` (exchange time), so the bars fall inside any report window."""
    body = real_payload("yahoo_chart.json")
    result = body["chart"]["result"][0]
    result["meta"]["symbol"] = symbol
    result["meta"]["currency"] = "AUD" if symbol.endswith(".AX") else "USD"
    open_utc = 14 * 3600 + 30 * 60  # 09:30 New York (gmtoffset -18000)
    first = today - timedelta(days=days)
    stamps = [
        int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) + open_utc
        for d in (first + timedelta(days=i) for i in range(days))
    ]
    result["timestamp"] = stamps
    block = result["indicators"]["quote"][0]
    for field, base in (("open", 100.0), ("high", 101.0), ("low", 99.0), ("close", 100.5)):
        block[field] = [round(base + 0.5 * i, 2) for i in range(days)]
    block["volume"] = [1_000_000 + i for i in range(days)]
    result["indicators"]["adjclose"][0]["adjclose"] = list(block["close"])
    return body


def standin_answer(
    service: str, path: str, params: Mapping[str, str], outcome: str, today: date
) -> Answer | None:
    """The answer a real service gives for `outcome` (None: no answer at all, a timeout)."""
    if service == "yahoo_finance" and path in ("", "/"):  # the session cookie
        return 200, {"content-type": "text/html", "set-cookie": "A3=d=standin; Path=/"}, b"ok"
    if service == "yahoo_finance" and path == "/v1/test/getcrumb":
        return 200, {"content-type": "text/plain"}, b"StandInCrumb1"
    if outcome == "timeout":
        return None
    if outcome == "5xx":
        return _text(503, "Service Unavailable")
    if outcome == "malformed":
        return 200, {"content-type": "application/json"}, b'{"truncated": [1, 2'
    if outcome == "empty":
        return 200, {"content-type": "application/json"}, b""
    symbol = path.rsplit("/", 1)[-1]
    if service == "yahoo_finance":
        return {
            "ok": lambda: _json(200, chart_body(symbol, today)),
            "not_found": lambda: _json(404, real_payload("yahoo_chart_404.json")),
            "refused": lambda: _text(429, "yahoo_429_blocked.txt"),
        }[outcome]()
    if service == "fmp":
        profile = real_payload("fmp_profile.json")
        profile[0]["symbol"] = params.get("symbol", "AAPL")
        return {
            "ok": lambda: _json(200, profile),
            "not_found": lambda: _json(200, []),
            "refused": lambda: _json(403, real_payload("fmp_403_legacy.json")),
        }[outcome]()
    if service == "alpha_vantage":
        overview = real_payload("alpha_vantage_overview.json")
        overview["Symbol"] = params.get("symbol", "AAPL")
        return {
            "ok": lambda: _json(200, overview),
            "not_found": lambda: _json(200, {}),
            "refused": lambda: _json(200, real_payload("alpha_vantage_information.json")),
        }[outcome]()
    if service == "sec_edgar":
        name = "sec_company_tickers.json" if path.endswith("company_tickers.json") else None
        return {
            "ok": lambda: _json(200, real_payload(name or "sec_submissions.json")),
            "not_found": lambda: _text(404, "Not Found"),
            "refused": lambda: _text(403, "sec_403_undeclared_tool.txt"),
        }[outcome]()
    if service == "fred":
        return {
            "ok": lambda: _json(200, real_payload("fred_observations.json")),
            "not_found": lambda: _json(400, real_payload("fred_400_series_does_not_exist.json")),
            "refused": lambda: _json(400, real_payload("fred_400_bad_key.json")),
        }[outcome]()
    if service == "coingecko":
        if path.endswith("/global"):
            ok = real_payload("coingecko_global.json")
        else:
            known = real_payload("coingecko_simple_price.json")
            ok = {c: known.get(c, known["bitcoin"]) for c in params.get("ids", "").split(",") if c}
        refusal = {"status": {"error_code": 401, "error_message": "Invalid API Key."}}
        return {
            "ok": lambda: _json(200, ok),
            "not_found": lambda: _json(200, {}),
            "refused": lambda: _json(401, refusal),
        }[outcome]()
    if service == "imf":
        return {
            "ok": lambda: _json(200, real_payload("imf_datamapper.json")),
            "not_found": lambda: _json(200, real_payload("imf_empty.json")),
            "refused": lambda: _text(403, "Forbidden"),
        }[outcome]()
    return _text(404, "no such service")


def standin_env(base: str) -> dict[str, str]:
    """Live mode against the stand-in: every service's base URL and a credential for each."""
    env = {f"TRADESCOUT_{name.upper()}_BASE_URL": f"{base}/{name}" for name in SERVICES}
    env.update({names[0]: "standin-key" for names in CREDENTIAL_ENV.values()})
    env["SEC_EDGAR_USER_AGENT"] = "tradescout-tests tests@example.invalid"
    return env


def portfolio_rows(tickers: Sequence[str]) -> str:
    """The demo CSV's header and its rows for `tickers` (real export rows, no made-up ones)."""
    lines = (DEMO_DATA / "raw" / "trade_history" / "demo.csv").read_text("utf-8").splitlines()
    keep = [ln for ln in lines[1:] if ln.split(",", 2)[1] in set(tickers)]
    return "\n".join([lines[0], *keep]) + "\n"


def assert_every_slot_is_a_value_or_a_gap(
    report: Mapping[str, Any], benchmark: str = "SPY"
) -> None:
    """The report's contract: each slot holds a value, or `gaps` holds exactly one gap for it
    (never both, never neither); every gap names its subject, a known reason and its fix."""
    from discovery.plan.needs import MACRO_SERIES
    from services.reasons import REASONS

    index: dict[tuple[str | None, str, str | None], int] = {}
    for g in report["gaps"]:
        assert g["subject"] and g["reason"] in REASONS and g["fix"], g
        named = g["subject"] if g["slot"] in ("benchmark", "indicator", "fx") else None
        key = (g["ticker"], g["slot"], named)
        index[key] = index.get(key, 0) + 1
    assert all(n == 1 for n in index.values()), index
    mc = report["market_context"]
    slots: list[tuple[tuple[str | None, str, str | None], bool]] = [
        ((None, "benchmark", benchmark), benchmark in mc["benchmarks"]),
        ((None, "vix", None), "vix" in mc["volatility"]),
        ((None, "growth", None), bool(mc["global_growth"])),
        ((None, "crypto_market", None), "market" in mc["crypto"]),
        ((None, "crypto_prices", None), "prices" in mc["crypto"]),
    ]
    slots += [((None, "indicator", s), s in mc["economic_indicators"]) for s in MACRO_SERIES]
    for ticker, data in report["ticker_data"].items():
        for slot, field in (
            ("chart", "price_history"),
            ("profile", "profile"),
            ("filings", "filings"),
        ):
            slots.append(((ticker, slot, None), data[field] is not None))
    base = report["performance_metrics"]["base_currency"]
    majors = {
        {"GBp": "GBP", "ZAc": "ZAR", "ILA": "ILS"}.get(code, code)
        for code in report["performance_metrics"]["by_currency"]
    } - {base, "unknown"}
    fx_gaps = {g["subject"] for g in report["gaps"] if g["slot"] == "fx"}
    for currency in majors:  # each foreign currency: a rate, or an fx_unavailable gap
        symbol = f"{currency}{base}=X"
        has_rate = symbol in mc["fx_rates"]
        assert has_rate != (symbol in fx_gaps), f"{symbol}: rate={has_rate}"
        assert (report["performance_metrics"]["converted"] is not None) <= has_rate
    for position in report["active_positions"]:  # a mark, or the chart gap saying why not
        chart = report["ticker_data"][position["ticker"]]["price_history"]
        assert (position["mark"] is not None) == (chart is not None), position["ticker"]
    for key, has_value in slots:
        assert has_value != (key in index), f"{key}: value={has_value}, gap={key in index}"
