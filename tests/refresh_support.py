"""Helpers shared by the refresh tests (in-process and end-to-end): data roots, a movable clock,
fast client/sandbox limits and sandbox stats."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.gen_trades import write_trades_csv
from services.sandbox.limits import Window
from services.sandbox.universe import equity_symbols

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("yahoo_finance", "fmp", "alpha_vantage", "sec_edgar", "fred", "coingecko", "imf")
# Friday 2026-11-20 07:30 UTC: the next US close (21:00 UTC) is 13.5 h away, just outside a 12 h
# horizon; FRED/IMF/SEC submissions live 1 day, FMP/AV/CIK map 7 days, CoinGecko 15 minutes.
T0 = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
FAST_WINDOWS = {name: Window(10_000, 1.0) for name in SERVICES}


class MovableClock:
    """A clock the test moves by hand (shared by the hub, the cache and the sandbox)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def demo_root(tmp: Path) -> Path:
    """A copy of the demo data root (portfolio `demo`, 32 tickers, 8 open)."""
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


def requests_by_service(url: str) -> dict[str, int]:
    return {name: s["requests"] for name, s in sandbox_stats(url).items()}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}


def subjects_of(rows: Sequence[dict[str, Any]], service: str) -> list[str]:
    return [s for r in rows if r["service"] == service for s in r["subjects"]]
