"""Fixtures and helpers shared by the test suite: data roots built from the demo inputs (never
from the repo's cache, state or outputs), the sandbox with raised limits, the CLI as a real
subprocess, sandbox statistics, and a clock the tests move by hand."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Generator, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
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
SECRET_ENV: tuple[str, ...] = tuple(CREDENTIAL_ENV.values())


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
