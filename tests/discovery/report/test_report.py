"""Stage 4 pieces: the confidence formula, gap classification, the bounded summary, the schema."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from discovery.fetch.access import availability_of
from discovery.ingest.trades import ingest
from discovery.layout import DataLayout
from discovery.local.inventory import build_inventory
from discovery.plan.outcomes import Got
from discovery.plan.planner import plan_needs
from discovery.report.assemble import AssembleInputs, assemble_report
from discovery.report.confidence import WEIGHTS, confidence
from discovery.report.gaps import Gap, dedupe_gaps
from discovery.report.schema import validate_report
from discovery.report.summary import SUMMARY_LIMIT, render_summary
from discovery.runs.discover import book_needs
from services import alpha_vantage, fmp
from services.reasons import REASONS
from services.sandbox.portfolios import write_trades_csv
from services.spec import FetchResult
from tests.conftest import SERVICES

TODAY = date(2026, 11, 21)


def test_weights_sum_to_one() -> None:
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


def test_confidence_formula_by_hand() -> None:
    components = {
        "trade_quality": 0.95,
        "local_coverage": 0.5,
        "ticker_data": 0.8,
        "market_context": 0.25,
    }
    assert confidence(components) == round(0.4 * 0.95 + 0.2 * 0.5 + 0.2 * 0.8 + 0.2 * 0.25, 4)
    assert confidence({k: 1.0 for k in WEIGHTS}) == 1.0
    assert confidence({}) == 0.0
    # components are clamped to [0, 1]
    assert confidence({"trade_quality": 2.0, "local_coverage": -1.0}) == 0.4


def test_gap_classification_and_fix_come_from_the_reason_table() -> None:
    for reason in ("not_found", "not_applicable", "no_data"):
        assert not Gap("ZZQ", "fmp", "profile", reason).is_fault, reason
    for reason in ("offline", "unavailable", "memory_ceiling", "quota_exhausted", "bad_response"):
        assert Gap("AAPL", "fred", "observations", reason).is_fault, reason
    for reason, entry in REASONS.items():
        gap = Gap(None, "fred", "observations", reason, subject="FEDFUNDS").to_json()
        assert gap["fix"] == entry.fix and gap["fix"].endswith("."), reason
    assert Gap(None, "x", "y", "never_heard_of").is_fault  # unknown reasons are never hidden


def test_dedupe_keeps_market_series_apart() -> None:
    gap = Gap(None, "fred", "observations", "offline", None, "FEDFUNDS", "indicator")
    assert gap.to_json()["subject"] == "FEDFUNDS"
    gaps = [
        gap,
        Gap(None, "fred", "observations", "unavailable", None, "DGS10", "indicator"),
        Gap(None, "fred", "observations", "unavailable", "again", "FEDFUNDS", "indicator"),
        Gap("AAPL", "yahoo_finance", "chart", "offline", slot="chart"),
        Gap("AAPL", "yahoo_finance", "chart", "no_data", slot="chart"),
    ]
    out = dedupe_gaps(gaps)
    assert [(g.about, g.reason) for g in out] == [
        ("FEDFUNDS", "offline"),
        ("DGS10", "unavailable"),
        ("AAPL", "offline"),
    ]


def negative(request: Any) -> Got:
    when = datetime(2026, 11, 21, tzinfo=UTC)
    return Got(FetchResult(request, "negative", None, "cache", when, when))


@pytest.fixture
def small_inputs(tmp_path: Path) -> AssembleInputs:
    root = tmp_path / "data"
    csv = root / "raw" / "trade_history" / "t.csv"
    write_trades_csv(csv, 6, ["AAPL", "ZZQA", "PG"], seed=5)
    (root / "outputs" / "fundamental_analysis").mkdir(parents=True)
    (root / "outputs" / "fundamental_analysis" / "AAPL_20261112.md").write_text(
        "---\ntitle: AAPL\nsector: Technology\n---\n\n# AAPL\n", encoding="utf-8"
    )
    book = ingest(csv)
    inventory = build_inventory(DataLayout(root), book.ticker_symbols, today=TODAY)
    needs = book_needs(book, inventory, TODAY)
    plan = plan_needs(
        needs,
        coverage=lambda r: "miss",
        availability=lambda s: availability_of(True, None, None),
    )
    outcomes = {
        **plan.blocked,
        fmp.profile_request("ZZQA").cache_key(): negative(fmp.profile_request("ZZQA")),
        alpha_vantage.overview_request("ZZQA").cache_key(): negative(
            alpha_vantage.overview_request("ZZQA")
        ),
    }
    return AssembleInputs(
        portfolio="t",
        run_id="20261121T000000Z-abcdef12",
        started_at=datetime(2026, 11, 21, 8, 0, tzinfo=UTC),
        tool_version="0.1.0",
        upstream="offline",
        data_source="raw/trade_history/t.csv",
        book=book,
        inventory=inventory,
        needs=needs,
        outcomes=outcomes,
        usage={},
        cache_inventory={},
        today=TODAY,
        timeframe="all",
        report_path="outputs/trade_history/discovery/t_20261121.json",
    )


def finish(report: dict[str, Any]) -> dict[str, Any]:
    report["discovery_metadata"]["stage_timings_ms"] = {"inventory": 1.0, "ingest": 2.0}
    return report


def test_assembled_confidence_is_measured(small_inputs: AssembleInputs) -> None:
    report, gaps = assemble_report(small_inputs)
    validate_report(finish(report))
    meta = report["discovery_metadata"]
    comps = meta["confidence_components"]
    # one of three tickers has a (fresh) local file; nothing fetched, so only the local
    # profile of AAPL is present among 3 tickers × (chart, profile, filings)
    assert comps["local_coverage"] == pytest.approx(1 / 3, abs=1e-4)
    assert comps["ticker_data"] == pytest.approx(1 / 9, abs=1e-4)
    assert comps["market_context"] == 0.0
    assert comps["trade_quality"] == pytest.approx(small_inputs.book.overall_confidence, abs=1e-4)
    expected = 0.4 * comps["trade_quality"] + 0.2 * comps["local_coverage"]
    expected += 0.2 * comps["ticker_data"]
    assert meta["confidence_score"] == pytest.approx(expected, abs=1e-3)
    assert report["ticker_data"]["AAPL"]["provenance"]["profile"]["origin"] == "local"
    # the unknown ticker's profile gap is inherent; the missing charts are faults
    by = {(g.ticker, g.slot): g for g in gaps}
    assert not by[("ZZQA", "profile")].is_fault
    assert by[("ZZQA", "profile")].reason == "not_found"
    assert by[("PG", "chart")].reason == "offline"
    assert by[("PG", "filings")].reason == "offline"  # the CIK map's own reason
    assert "AAPL" not in {g.ticker for g in gaps if g.slot == "profile"}
    assert report["next_phase_inputs"]["complete"] is False


def fake_report(n_tickers: int, n_gaps: int) -> dict[str, Any]:
    tickers = [f"T{i:05d}" for i in range(n_tickers)]
    usage = {
        s: {
            "planned": 10**6,
            "cache_hits": 10**6,
            "network_requests": 10**6,
            "errors": 12345,
            "breaker_state": "open",
        }
        for s in SERVICES
    }
    reasons = ["offline", "unavailable", "not_found", "memory_ceiling", "quota_exhausted"]
    services = ["yahoo_finance", "fmp", "fred", "sec_edgar"]
    return {
        "portfolio": "x" * 200,
        "discovery_metadata": {"upstream": "sandbox", "confidence_score": 0.5},
        "portfolio_summary": {
            "total_trades": 10**6,
            "closed_trades": 10**6,
            "active_trades": 0,
            "unique_tickers": n_tickers,
            "first_entry_date": "2015-01-02",
            "last_exit_date": "2026-11-20",
        },
        "performance_metrics": {"win_rate": 0.5, "profit_factor": None, "total_pnl": 1.0},
        "local_data_integration": {
            "fundamental_analysis": {
                "coverage": {"with_analysis": 0, "total": n_tickers, "ratio": 0.0},
                "stale": tickers,
            }
        },
        "market_context": {"benchmarks": {}, "volatility": {}},
        "service_usage": usage,
        "data_quality_assessment": {
            "issues": [
                {"row": i, "kind": f"kind_{i % 50}_" + "k" * 40, "message": "m"}
                for i in range(5000)
            ]
        },
        "gaps": [
            {
                "ticker": tickers[i % n_tickers] + "X" * 15,
                "service": services[i % 4] + "_" * 40,
                "dataset": "chart",
                "reason": reasons[i % 5] + str(i % 13) + "r" * 60,
            }
            for i in range(n_gaps)
        ],
        "next_phase_inputs": {"tickers_missing_analysis": [t + "Y" * 20 for t in tickers]},
    }


@pytest.mark.parametrize(("tickers", "gaps"), [(1, 0), (2000, 6000), (20000, 100000)])
def test_summary_is_bounded(tickers: int, gaps: int) -> None:
    path = "/very/long/path/" + "p" * 300 + "/report.json"
    text = render_summary(fake_report(tickers, gaps), path)
    assert len(text) < SUMMARY_LIMIT
    assert text.rstrip().endswith(path)
    if gaps:
        assert f"Gaps: {gaps:,}" in text


def summary_report() -> dict[str, Any]:
    report = fake_report(3, 0)
    zero = {"planned": 0, "cache_hits": 0, "network_requests": 0, "retries": 0, "errors": 0}
    report["service_usage"] = {
        "yahoo_finance": {**zero, "planned": 5, "network_requests": 6, "retries": 1},
        "fmp": {**zero, "cache_hits": 2},
        "imf": dict(zero),
    }
    report["performance_metrics"] = {
        "win_rate": 0.5,
        "profit_factor": None,
        "by_currency": {"AUD": {"total_pnl": 144.5}, "USD": {"total_pnl": -370.75}},
        "converted": {
            "currency": "USD",
            "total_pnl": -277.78,
            "rates": {"AUD": {"symbol": "AUDUSD=X", "rate": 0.6434, "as_of": "2026-12-01"}},
        },
        "base_currency": "USD",
    }
    report["active_positions"] = [
        {"ticker": "META", "mark": {"unrealized_pnl": -165.03, "currency": "USD"}},
        {"ticker": "MQG.AX", "mark": None},
    ]
    report["gaps"] = [
        {
            "ticker": "MQG.AX",
            "service": "alpha_vantage",
            "reason": "not_found",
            "subject": "MQG.AX",
        },
        {"ticker": "MQG.AX", "service": "sec_edgar", "reason": "not_found", "subject": "MQG.AX"},
        {"ticker": None, "service": "fred", "reason": "offline", "subject": "FEDFUNDS"},
        {"ticker": None, "service": "fred", "reason": "offline", "subject": "DGS10"},
        {"ticker": "AAPL", "service": "sec_edgar", "reason": "offline", "subject": "AAPL"},
    ]
    return report


def test_summary_names_subjects_per_service_and_reason() -> None:
    text = render_summary(summary_report(), "h.json", latest="d.json")
    lines = text.splitlines()
    assert "Gaps: 5 (3 faults)" in lines
    assert "  fred: offline ×2 (FEDFUNDS, DGS10)" in lines
    assert "  sec_edgar: not_found ×1 (MQG.AX)" in lines  # not AAPL: its own examples
    assert "  sec_edgar: offline ×1 (AAPL)" in lines
    assert "MQG.AX, MQG.AX" not in text
    assert "Requests: 6 network · 5 planned · 1 retries · 2 cache hits" in lines
    assert "imf" not in text  # a service with nothing to count is left out
    assert "yahoo_finance 6 network/5 planned/1 retries" in text and "fmp 0 network" in text
    assert lines[-2:] == ["Report: h.json", "Latest: d.json"]


def test_summary_money_per_currency_with_the_rate_and_the_marks() -> None:
    text = render_summary(summary_report(), "h.json")
    assert (
        "Realized PnL: AUD +144.50 · USD -370.75 (≈ USD -277.78 at AUDUSD=X 0.6434 on 2026-12-01)"
        in text
    )
    assert "total PnL" not in text
    marks = "Open positions: 2, 1 marked to market (unrealized USD -165.03)"
    assert f"{marks}; no price for MQG.AX" in text
    assert "over 3 tickers" in text
    one = summary_report()
    one["portfolio_summary"]["unique_tickers"] = 1
    one["performance_metrics"]["converted"] = None
    one["performance_metrics"]["not_converted"] = ["AUD"]
    text = render_summary(one, "h.json")
    assert "over 1 ticker," in text and "(no USD total: no rate for AUD)" in text


def test_schema_rejects_a_broken_report(small_inputs: AssembleInputs) -> None:
    report, _ = assemble_report(small_inputs)
    finish(report)
    validate_report(report)
    for mutate in (
        lambda r: r.pop("gaps"),
        lambda r: r["discovery_metadata"].__setitem__("confidence_score", 1.5),
        lambda r: r["discovery_metadata"].__setitem__("data_source", "/abs/path.csv"),
        lambda r: r.__setitem__("extra", 1),
        lambda r: r["gaps"][0].pop("fix"),
        lambda r: r["gaps"][0].__setitem__("subject", ""),
        lambda r: r.__setitem__("closed_trades", {"path": "../x.jsonl", "count": 6000}),
        lambda r: r["performance_metrics"].pop("by_currency"),
        lambda r: r["active_positions"][0].pop("mark"),
        lambda r: r["market_context"].pop("fx_rates"),
    ):
        broken = copy.deepcopy(report)
        mutate(broken)
        with pytest.raises(jsonschema.ValidationError):
            validate_report(broken)
