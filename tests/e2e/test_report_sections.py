"""The demo portfolio against the sandbox, end to end: the report's money per currency and
converted at the sandbox's own AUDUSD=X close, every open position marked at the sandbox's
latest close, every closed trade's benchmark return recomputed from the sandbox's SPY closes;
then a warm run (no request), `--sandbox --offline` over the sandbox's cache, and the history of
every run's report."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from discovery.report.schema import validate_report
from discovery.runs.discover import DiscoverOptions, Outcome, discover_async
from discovery.settings import load_settings
from discovery.upstream import Target
from services.sandbox.server import SandboxServer
from services.sandbox.synthetic import bars_between, local_today
from services.sandbox.universe import universe
from tests.conftest import (
    assert_every_slot_is_a_value_or_a_gap,
    demo_root,
    fast_config,
    fast_sandbox,
    requests_by_service,
    reset,
)

__all__ = ["fast_sandbox"]

pytestmark = pytest.mark.integration


def sandbox_closes(symbol: str, first: date) -> dict[date, float]:
    """The sandbox's own daily closes of `symbol` from `first` to its market's today."""
    sec = universe().security(symbol)
    assert sec is not None
    today = local_today(datetime.now(UTC), sec.market)
    bars = bars_between(sec.walk, first, today)
    return dict(zip(bars.days, bars.close, strict=True))


def on_or_before(closes: dict[date, float], day: date) -> float | None:
    known = [d for d in closes if d <= day]
    return closes[max(known)] if known else None


async def run(root: Path, target: Target) -> Outcome:
    settings = load_settings(fast_config(root.parent), data_root=root)
    outcome = await discover_async(settings, DiscoverOptions("demo", target=target))
    assert outcome.report is not None
    validate_report(outcome.report)
    return outcome


def check_values(report: dict[str, Any]) -> None:
    pm = report["performance_metrics"]
    assert set(pm["by_currency"]) == {"AUD", "USD"} and pm["total_pnl"] is None
    rate = pm["converted"]["rates"]["AUD"]
    aud = sandbox_closes("AUDUSD=X", date.fromisoformat(rate["as_of"]))
    assert rate["symbol"] == "AUDUSD=X" and rate["rate"] == aud[date.fromisoformat(rate["as_of"])]
    assert max(aud) == date.fromisoformat(rate["as_of"])  # the latest close
    by = pm["by_currency"]
    want = by["USD"]["total_pnl"] + rate["rate"] * by["AUD"]["total_pnl"]
    assert pm["converted"]["total_pnl"] == pytest.approx(want, abs=0.011)

    positions = report["active_positions"]
    assert len(positions) == 8
    for p in positions:
        closes = sandbox_closes(p["ticker"], date.fromisoformat(p["entry_date"]))
        latest = max(closes)
        assert p["mark"]["price"] == closes[latest], p["ticker"]
        assert p["mark"]["as_of"] == latest.isoformat() and p["mark"]["synthetic"] is True
        assert p["csv_as_of"] is not None and "current_unrealized_pnl" not in p

    trades = report["closed_trades"]
    assert isinstance(trades, list) and len(trades) == report["portfolio_summary"]["closed_trades"]
    spy = sandbox_closes("SPY", date(2026, 1, 1))
    for t in trades:
        start = on_or_before(spy, date.fromisoformat(t["entry_date"]))
        end = on_or_before(spy, date.fromisoformat(t["exit_date"]))
        assert start is not None and end is not None
        assert t["benchmark_return"] == round(end / start - 1.0, 6), t["row"]
        assert t["excess_return"] == pytest.approx(t["return"] - end / start + 1.0, abs=2e-6)
    assert {t["currency"] for t in trades} == {"AUD", "USD"}
    assert_every_slot_is_a_value_or_a_gap(report)


@pytest.mark.slow
async def test_demo_report_against_the_sandbox(tmp_path: Path, fast_sandbox: SandboxServer) -> None:
    root = demo_root(tmp_path)
    cold = await run(root, Target("sandbox", fast_sandbox.url))
    assert cold.exit_code == 0, [g.to_json() for g in cold.gaps if g.is_fault]
    assert cold.report is not None
    check_values(cold.report)
    assert requests_by_service(fast_sandbox.url)["yahoo_finance"] == 32 + 2 + 1  # + AUDUSD=X

    reset(fast_sandbox.url)
    warm = await run(root, Target("sandbox", fast_sandbox.url))
    assert requests_by_service(fast_sandbox.url) == {} and warm.exit_code == 0
    assert warm.report is not None
    # a cached refusal keeps its reason: MQG.AX's FMP 402 reads as on the cold run
    profile = [g for g in warm.report["gaps"] if g["ticker"] == "MQG.AX" and g["slot"] == "profile"]
    assert [(g["service"], g["reason"]) for g in profile] == [("alpha_vantage", "not_found")]
    assert "fmp: plan_limited" in profile[0]["detail"]

    offline = await run(root, Target("sandbox", "http://127.0.0.1:0", offline=True))
    assert requests_by_service(fast_sandbox.url) == {} and offline.exit_code == 0
    assert offline.report is not None
    meta = offline.report["discovery_metadata"]
    assert meta["upstream"] == "offline" and meta["cache_upstream"] == "sandbox"
    check_values(offline.report)
    for key in ("performance_metrics", "active_positions", "closed_trades", "exposure"):
        assert offline.report[key] == cold.report[key], key

    # every run's report is kept; the daily file is the latest, and each names its own file
    history = sorted((root / "outputs/trade_history/discovery/history").glob("demo_*.json"))
    assert len(history) == 3
    assert {cold.report_path, warm.report_path, offline.report_path} == set(history)
    assert offline.latest_path is not None
    daily = json.loads(offline.latest_path.read_text("utf-8"))
    assert offline.report_path is not None
    assert daily == json.loads(offline.report_path.read_text("utf-8"))
    assert daily["discovery_metadata"]["run_id"] == meta["run_id"]
    assert (
        str(offline.report_path) in offline.summary and str(offline.latest_path) in offline.summary
    )
    assert offline.report["next_phase_inputs"]["report_path"].startswith(
        "outputs/trade_history/discovery/history/demo_"
    )
