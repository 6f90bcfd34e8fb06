"""`tradescout discover` end to end: real sockets against the embedded sandbox.

Most runs use a small generated portfolio and raised rate limits (client and sandbox) so they take
about a second; the cold/warm, failure and SIGKILL runs go through the real CLI in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from cache.disk.store import DiskCache, existing_namespaces
from discovery.report.schema import validate_report
from discovery.report.summary import SUMMARY_LIMIT
from discovery.runs.discover import DiscoverOptions, discover_async
from discovery.settings import load_settings
from discovery.upstream import Target
from services.sandbox.faults import parse_fault_spec
from services.sandbox.limits import Window
from services.sandbox.portfolios import synthetic_tickers, write_trades_csv
from services.sandbox.server import SandboxServer
from tests.conftest import (
    FAST_LIMITS,
    SERVICES,
    TRADESCOUT,
    clean_env,
    fast_config,
    fast_sandbox,
    gaps_of,
    listing,
    make_root,
    plain_tickers,
    report_files,
    requests_by_service,
    reset,
    run_cli,
    stats,
)

__all__ = ["fast_sandbox"]  # the fixture, imported for pytest

pytestmark = pytest.mark.integration


def expected_cold(n_us_stocks: int) -> dict[str, int]:
    """Network requests of a cold run over US stocks without local files (hand-counted)."""
    return {
        "yahoo_finance": n_us_stocks + 2,  # each ticker, the benchmark, ^VIX
        "fmp": n_us_stocks,  # one profile each
        "sec_edgar": n_us_stocks + 1,  # the CIK map, then one submissions file each
        "fred": 5,
        "coingecko": 2,  # global overview + one batched price request
        "imf": 1,
    }


def load_report(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    validate_report(report)
    return report


def sandbox_env(url: str, config: Path | None = None) -> dict[str, str]:
    env = {"TRADESCOUT_SANDBOX_URL": url}
    if config is not None:
        env["TRADESCOUT_CONFIG"] = str(config)
    return env


async def run_inprocess(
    root: Path, url: str | None, config: Path | None, **options: Any
) -> tuple[int, dict[str, Any] | None]:
    settings = load_settings(config=config, data_root=root)
    target = Target("sandbox", url) if url else Target(offline=True)
    outcome = await discover_async(
        settings, DiscoverOptions(portfolio="small", target=target, **options)
    )
    if outcome.report is not None:
        validate_report(outcome.report)
        assert outcome.report_path is not None
        assert load_report(outcome.report_path) == json.loads(json.dumps(outcome.report))
        assert len(outcome.summary) < SUMMARY_LIMIT
    return outcome.exit_code, outcome.report


@pytest.mark.slow
def test_cold_then_warm_exact_counts(tmp_path: Path, fast_sandbox: SandboxServer) -> None:
    tickers = plain_tickers(5)
    root = make_root(tmp_path, tickers)
    env = sandbox_env(fast_sandbox.url, fast_config(tmp_path))

    cold = run_cli(["discover", "small", "--data-root", str(root)], cwd=tmp_path, env=env)
    assert cold.returncode == 0, cold.stderr
    want = expected_cold(len(tickers))
    seen = stats(fast_sandbox.url)
    assert {k: v["requests"] for k, v in seen.items() if v["requests"]} == want
    assert all(v["rate_limited"] == 0 and v["faulted"] == 0 for v in seen.values())
    [path] = report_files(root)
    report = load_report(path)
    assert gaps_of(report) == []
    usage = report["service_usage"]
    for name in SERVICES:
        u = usage[name]
        assert u["network_requests"] == u["planned"] == want.get(name, 0), name
        assert u["retries"] == 0 and u["rate_limited"] == 0 and u["cache_hits"] == 0
    assert str(path) in cold.stdout
    for ticker in tickers:
        data = report["ticker_data"][ticker]
        assert data["price_history"] is not None and data["profile"] is not None
        assert data["filings"] is not None
        assert data["provenance"]["profile"]["origin"] == "network"

    reset(fast_sandbox.url)
    warm = run_cli(["discover", "small", "--data-root", str(root)], cwd=tmp_path, env=env)
    assert warm.returncode == 0, warm.stderr
    assert requests_by_service(fast_sandbox.url) == {}
    warm_report = load_report(path)
    assert gaps_of(warm_report) == []
    for name in SERVICES:
        u = warm_report["service_usage"][name]
        assert u["network_requests"] == u["planned"] == 0
        assert u["cache_hits"] == want.get(name, 0), name
    assert warm_report["ticker_data"] == {
        t: {**d, "provenance": {k: {**p, "origin": "cache"} for k, p in d["provenance"].items()}}
        for t, d in report["ticker_data"].items()
    }
    assert warm_report["market_context"] == report["market_context"]


async def test_local_first_skips_profile_fetch(tmp_path: Path, fast_sandbox: SandboxServer) -> None:
    # AAPL has a fresh local file (9 days old) that states its sector in the front matter.
    root = make_root(tmp_path, ["AAPL", *plain_tickers(2)])
    code, report = await run_inprocess(root, fast_sandbox.url, fast_config(tmp_path))
    assert code == 0 and report is not None
    seen = stats(fast_sandbox.url)
    assert seen["fmp"]["requests"] == 2
    assert seen["alpha_vantage"]["requests"] == 0
    assert seen["yahoo_finance"]["requests"] == 3 + 2  # price history is still fetched
    aapl = report["ticker_data"]["AAPL"]
    assert aapl["provenance"]["profile"]["service"] == "local"
    assert aapl["provenance"]["profile"]["origin"] == "local"
    assert aapl["profile"]["sector"] == "technology"
    assert aapl["profile"]["from_local_analysis"].endswith("AAPL_20261112.md")
    assert aapl["provenance"]["price_history"]["origin"] == "network"


def test_service_down_gives_gaps_and_exit_3(tmp_path: Path) -> None:
    root = make_root(tmp_path, plain_tickers(3))
    faults = [parse_fault_spec("fred=down", SERVICES)]
    with SandboxServer(faults=faults, rate_limits=FAST_LIMITS) as server:
        env = sandbox_env(server.url, fast_config(tmp_path))
        done = run_cli(["discover", "small", "--data-root", str(root)], cwd=tmp_path, env=env)
        served = stats(server.url)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert served["fred"]["faulted"] == served["fred"]["requests"] > 0
    [path] = report_files(root)
    report = load_report(path)
    fred_gaps = [g for g in gaps_of(report) if g["service"] == "fred"]
    assert {g["subject"] for g in fred_gaps} == {
        "FEDFUNDS",
        "DGS10",
        "CPIAUCSL",
        "UNRATE",
        "VIXCLS",
    }
    assert all(g["reason"] in ("unavailable", "circuit_open") for g in fred_gaps)
    assert all(g["ticker"] is None for g in fred_gaps)
    assert report["market_context"]["economic_indicators"] == {}
    assert report["next_phase_inputs"]["complete"] is False
    assert "fred" in done.stdout and "Gaps: 5" in done.stdout
    # everything else arrived
    assert {g["service"] for g in gaps_of(report)} == {"fred"}


async def test_fmp_errors_fall_back_to_alpha_vantage(tmp_path: Path) -> None:
    tickers = plain_tickers(2)
    root = make_root(tmp_path, tickers)
    faults = [parse_fault_spec("fmp=error:1", SERVICES)]
    with SandboxServer(faults=faults, rate_limits=FAST_LIMITS) as server:
        code, report = await run_inprocess(root, server.url, fast_config(tmp_path))
        served = stats(server.url)
    assert report is not None
    assert served["alpha_vantage"]["requests"] == 2
    assert served["fmp"]["faulted"] == served["fmp"]["requests"] > 0
    for ticker in tickers:
        assert report["ticker_data"][ticker]["provenance"]["profile"]["service"] == "alpha_vantage"
    assert not [g for g in gaps_of(report) if g["dataset"] in ("profile", "overview")]
    assert code == 0


async def test_429_storm_honours_retry_after(tmp_path: Path) -> None:
    tickers = plain_tickers(8)
    root = make_root(tmp_path, tickers)
    limits = {**FAST_LIMITS, "yahoo_finance": Window(5, 1.0)}  # the client asks for 200/s
    with SandboxServer(faults=(), rate_limits=limits) as server:
        started = time.monotonic()
        code, report = await run_inprocess(root, server.url, fast_config(tmp_path))
        elapsed = time.monotonic() - started
        served = stats(server.url)["yahoo_finance"]
    assert code == 0 and report is not None
    assert gaps_of(report) == []
    assert served["served"] == len(tickers) + 2  # every chart arrived exactly once
    assert served["rate_limited"] > 0
    usage = report["service_usage"]["yahoo_finance"]
    assert usage["rate_limited"] == served["rate_limited"]
    assert usage["planned"] == len(tickers) + 2
    assert usage["network_requests"] == served["requests"]  # 429'd attempts included
    assert usage["retries"] == served["rate_limited"]
    # 10 requests through a 5-per-second window: at least one Retry-After wait of 1 s, and a
    # client that honours it is rejected at most once per request.
    assert elapsed >= 1.0
    assert served["rate_limited"] <= len(tickers) + 2


def cache_entries(root: Path) -> dict[str, int]:
    with DiskCache(root / "cache") as cache:
        return {
            name: sum(1 for _ in cache.namespace(name).iter_keys())
            for name in existing_namespaces(root / "cache")
        }


@pytest.mark.slow
def test_sigkill_mid_fetch_then_rerun(tmp_path: Path) -> None:
    tickers = plain_tickers(6)
    root = make_root(tmp_path, tickers)
    want = expected_cold(len(tickers))
    with SandboxServer(faults=(), rate_limits=FAST_LIMITS, latency_ms=150) as server:
        proc = subprocess.Popen(
            [str(TRADESCOUT), "discover", "small", "--data-root", str(root)],
            cwd=tmp_path,
            env=clean_env(sandbox_env(server.url)),  # default client rates: a few seconds
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while sum(s["served"] for s in stats(server.url).values()) < 8:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        first = requests_by_service(server.url)
        assert sum(first.values()) < sum(want.values())  # really killed mid-fetch

        for path in report_files(root):  # absent, or whole
            load_report(path)
        verify = run_cli(["cache", "verify", "--data-root", str(root)], cwd=tmp_path)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        cached = cache_entries(root)
        assert sum(cached.values()) > 0

        reset(server.url)
        rerun = run_cli(
            ["discover", "small", "--data-root", str(root)],
            cwd=tmp_path,
            env=sandbox_env(server.url, fast_config(tmp_path)),
        )
        assert rerun.returncode == 0, rerun.stderr
        second = requests_by_service(server.url)
    # nothing that was cached before the kill is fetched again
    assert second == {k: want[k] - cached.get(k, 0) for k in want if want[k] - cached.get(k, 0)}
    report = load_report(report_files(root)[0])
    assert gaps_of(report) == []
    for name, n in cached.items():
        assert report["service_usage"][name]["cache_hits"] == n
    assert cache_entries(root) == want


async def test_memory_ceiling_stops_scheduling(tmp_path: Path, fast_sandbox: SandboxServer) -> None:
    root = make_root(tmp_path, plain_tickers(3))
    code, report = await run_inprocess(
        root, fast_sandbox.url, fast_config(tmp_path), memory_limit_mb=16
    )
    assert code == 3 and report is not None
    assert report["discovery_metadata"]["stopped_early"] == "memory_ceiling"
    assert requests_by_service(fast_sandbox.url) == {}
    reasons = {g["reason"] for g in gaps_of(report)}
    assert "memory_ceiling" in reasons
    assert report["next_phase_inputs"]["complete"] is False
    # the trade-book sections are still complete
    assert report["portfolio_summary"]["unique_tickers"] == 3


@pytest.mark.slow
def test_dry_run_prints_plan_and_touches_nothing(
    tmp_path: Path, fast_sandbox: SandboxServer
) -> None:
    tickers = plain_tickers(3)
    root = make_root(tmp_path, tickers)
    config = fast_config(tmp_path)
    env = sandbox_env(fast_sandbox.url, config)
    before = listing(root)
    done = run_cli(
        ["discover", "small", "--dry-run", "--data-root", str(root)], cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert listing(root) == before
    assert requests_by_service(fast_sandbox.url) == {}
    want = expected_cold(len(tickers))
    lines = done.stdout.splitlines()
    for ticker in tickers:
        fmp_line = [ln for ln in lines if ln.startswith("fmp ") and f" {ticker} " in ln]
        assert len(fmp_line) == 1 and "company profile needed" in fmp_line[0]
        assert any(ln.startswith("yahoo_finance ") and f" {ticker} " in ln for ln in lines)
    planned = sum(want.values()) - len(tickers)  # submissions wait for the CIK map
    assert f"planned {planned} requests:" in done.stdout
    assert f"+ up to {len(tickers)} SEC filings requests once the CIK map is read" in done.stdout
    assert "💹" not in done.stdout and "yahoo_finance:chart:" in done.stdout  # keys verbatim

    as_json = run_cli(
        ["discover", "small", "--dry-run", "--json", "--data-root", str(root)],
        cwd=tmp_path,
        env=env,
    )
    plan = json.loads(as_json.stdout)
    assert plan["totals"]["planned"] == planned
    assert all(f["reason"] for f in plan["fetches"])
    assert listing(root) == before

    # after a real run, the dry run plans nothing and still writes nothing
    assert (
        run_cli(["discover", "small", "--data-root", str(root)], cwd=tmp_path, env=env).returncode
        == 0
    )
    reset(fast_sandbox.url)
    warm_before = listing(root)
    again = run_cli(
        ["discover", "small", "--dry-run", "--json", "--data-root", str(root)],
        cwd=tmp_path,
        env=env,
    )
    assert json.loads(again.stdout)["totals"]["planned"] == 0
    assert listing(root) == warm_before
    text = run_cli(
        ["discover", "small", "--dry-run", "--data-root", str(root)], cwd=tmp_path, env=env
    ).stdout
    assert "planned 0 requests: none" in text and "SEC filings" not in text  # all cached
    assert text.startswith("nothing to fetch") and "service" not in text.splitlines()[0]
    assert listing(root) == warm_before
    assert requests_by_service(fast_sandbox.url) == {}


@pytest.mark.slow
def test_offline_cold_then_warm(tmp_path: Path, fast_sandbox: SandboxServer) -> None:
    tickers = plain_tickers(3)
    root = make_root(tmp_path, tickers)
    env = sandbox_env(fast_sandbox.url, fast_config(tmp_path))
    cold = run_cli(
        ["discover", "small", "--offline", "--data-root", str(root)], cwd=tmp_path, env=env
    )
    assert cold.returncode == 3, cold.stderr
    assert "Traceback" not in cold.stderr
    assert requests_by_service(fast_sandbox.url) == {}
    report = load_report(report_files(root)[0])
    assert report["discovery_metadata"]["upstream"] == "offline"
    assert {g["reason"] for g in gaps_of(report)} == {"offline"}
    missing = {(g["ticker"], g["dataset"]) for g in gaps_of(report) if g["ticker"]}
    assert missing == {(t, d) for t in tickers for d in ("chart", "profile", "submissions")}

    online = run_cli(["discover", "small", "--data-root", str(root)], cwd=tmp_path, env=env)
    assert online.returncode == 0, online.stderr
    reset(fast_sandbox.url)
    warm = run_cli(
        ["discover", "small", "--offline", "--data-root", str(root)], cwd=tmp_path, env=env
    )
    assert warm.returncode == 0, warm.stderr
    assert requests_by_service(fast_sandbox.url) == {}
    offline_report = load_report(report_files(root)[0])
    assert gaps_of(offline_report) == []
    for ticker in tickers:
        data = offline_report["ticker_data"][ticker]
        assert data["price_history"] and data["profile"] and data["filings"] is not None


async def test_summary_bounded_for_2000_tickers_offline(tmp_path: Path) -> None:
    tickers = synthetic_tickers(2000)
    root = make_root(tmp_path, tickers[:1])
    write_trades_csv(root / "raw" / "trade_history" / "small.csv", 4000, tickers, seed=3)
    code, report = await run_inprocess(root, None, None)
    assert code == 3 and report is not None
    assert report["portfolio_summary"]["unique_tickers"] == 2000
    assert len(gaps_of(report)) >= 2 * 2000


def test_secrets_absent_from_every_file_written(
    tmp_path: Path, fast_sandbox: SandboxServer
) -> None:
    tickers = plain_tickers(2)
    root = make_root(tmp_path, tickers)
    secrets = {
        "FMP_API_KEY": "SEKRETfmp123",
        "ALPHA_VANTAGE_API_KEY": "SEKRETav456",
        "FRED_API_KEY": "SEKRETfred789",
        "COINGECKO_API_KEY": "SEKRETcg000",
        "SEC_EDGAR_USER_AGENT": "Test Person sekret@example.com",
    }
    env = {f"TRADESCOUT_{s.upper()}_BASE_URL": f"{fast_sandbox.url}/{s}" for s in SERVICES}
    env |= secrets | {"TRADESCOUT_CONFIG": str(fast_config(tmp_path))}
    done = run_cli(["discover", "small", "--data-root", str(root)], cwd=tmp_path, env=env)
    again = run_cli(
        ["discover", "small", "--json", "--data-root", str(root)], cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert again.returncode == 0, again.stderr
    assert sum(requests_by_service(fast_sandbox.url).values()) == sum(
        expected_cold(len(tickers)).values()
    )
    report = load_report(report_files(root)[0])
    assert report["discovery_metadata"]["upstream"] == "live"
    needles = [v.encode() for v in secrets.values()] + [b"SEKRET", b"sekret@example.com"]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "tradescout.toml"]
    assert any(p.name == "cache.db" for p in files)
    for path in files:
        blob = path.read_bytes()
        for needle in needles:
            assert needle not in blob, f"{needle!r} found in {path}"
    for text in (done.stdout, done.stderr, again.stdout, again.stderr):
        for needle in needles:
            assert needle.decode() not in text
    assert os.environ.get("FMP_API_KEY") != secrets["FMP_API_KEY"]
