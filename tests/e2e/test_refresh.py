"""`tradescout refresh` as a real process against a sandbox served from this test process:
report and ledger row, `--budget`, discover afterwards without network, the lock between two
processes (and a stale one after SIGKILL), and resuming a killed refresh."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cache.disk.store import DiskCache
from discovery.layout import DataLayout
from discovery.runs.ledger import Ledger
from services.sandbox.server import SandboxServer
from services.yahoo_finance import next_market_close
from tests.conftest import (
    FAST_WINDOWS,
    delta,
    generated_root,
    requests_by_service,
    write_fast_config,
)

EXE = Path(sys.executable).with_name("tradescout")


def cli_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESCOUT_")}
    env["TRADESCOUT_SANDBOX_URL"] = url
    return env


def argv(root: Path, config: Path, *args: str) -> list[str]:
    return [str(EXE), *args, "--data-root", str(root), "--config", str(config)]


def run_cli(root: Path, config: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv(root, config, *args),
        env=cli_env(url),
        cwd=root.parent,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def as_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.stdout.strip(), proc.stderr
    body: dict[str, Any] = json.loads(proc.stdout)
    return body


def cache_entries(root: Path) -> int:
    cache = DiskCache(DataLayout(root).cache_dir)
    try:
        return sum(
            sum(1 for _ in cache.namespace(n).iter_keys()) for n in cache.existing_namespaces()
        )
    finally:
        cache.close()


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(rate_limits=FAST_WINDOWS, faults=()) as server:
        yield server


@pytest.fixture
def slow_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(latency_ms=400, rate_limits=FAST_WINDOWS, faults=()) as server:
        yield server


@pytest.mark.slow
def test_refresh_report_ledger_then_discover_without_network(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    root = generated_root(tmp_path, 4)
    config = write_fast_config(tmp_path / "tradescout.toml")
    proc = run_cli(root, config, sandbox.url, "refresh", "--json")
    assert proc.returncode == 0, proc.stderr
    body = as_json(proc)
    made = requests_by_service(sandbox.url)
    # 4 charts + SPY + ^VIX; 4 profiles; CIK map + 4 filings; 5 FRED; IMF; 2 CoinGecko.
    assert sum(made.values()) == 23 and body["refreshed"] == 23 and body["failed"] == 0
    report = json.loads(Path(body["report_path"]).read_text("utf-8"))
    assert Path(body["report_path"]).parent == DataLayout(root).refresh_reports_dir
    for key in ("refreshed", "skipped_fresh", "skipped_budget", "failed", "budget_used"):
        assert key in report
    assert report["budget_used"] == {k: v for k, v in made.items() if v}
    assert report["budget"]["fmp"] == 125 and report["budget"]["alpha_vantage"] == 12
    assert report["duration_ms"] > 0 and report["portfolios"] == ["gen"]
    assert len(report["details"]["refreshed"]) == 23
    with Ledger.in_state_dir(DataLayout(root).state_dir) as ledger:
        rows = ledger.recent_runs(5, kind="refresh")
    assert len(rows) == 1
    assert rows[0].run_id == report["run_id"] and rows[0].exit_code == 0
    assert rows[0].network_requests == 23 and rows[0].portfolio == "gen"

    before = requests_by_service(sandbox.url)
    proc = run_cli(root, config, sandbox.url, "discover", "gen", "--json")
    assert proc.returncode == 0, proc.stderr
    assert delta(requests_by_service(sandbox.url), before) == {}


@pytest.mark.slow
def test_budget_flag_caps_fmp_requests(tmp_path: Path, sandbox: SandboxServer) -> None:
    root = generated_root(tmp_path, 8)
    config = write_fast_config(tmp_path / "tradescout.toml")
    body = as_json(run_cli(root, config, sandbox.url, "refresh", "--budget", "fmp=3", "--json"))
    assert requests_by_service(sandbox.url)["fmp"] == 3
    assert body["budget"]["fmp"] == 3 and body["budget_used"]["fmp"] == 3
    assert body["skipped_budget"] == 5
    bad = run_cli(root, config, sandbox.url, "refresh", "--budget", "fmp=lots")
    assert bad.returncode == 2 and "--budget" in bad.stderr + bad.stdout


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _lock_pid(root: Path) -> int | None:
    text = (
        (DataLayout(root).state_dir / "refresh.lock").read_text()
        if (DataLayout(root).state_dir / "refresh.lock").exists()
        else ""
    )
    return int(text.split()[0]) if text.strip().isdigit() else None


def _slow_config(tmp_path: Path) -> Path:
    return write_fast_config(tmp_path / "tradescout.toml", rate=4.0)


@pytest.mark.slow
def test_second_refresh_exits_0_and_a_stale_lock_is_taken_over(
    tmp_path: Path, slow_sandbox: SandboxServer
) -> None:
    root = generated_root(tmp_path, 8)
    config = _slow_config(tmp_path)
    first = subprocess.Popen(
        argv(root, config, "refresh"),
        env=cli_env(slow_sandbox.url),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: _lock_pid(root) == first.pid, 30, "the first refresh to take the lock")
        second = run_cli(root, config, slow_sandbox.url, "refresh")
        assert second.returncode == 0
        assert second.stdout.strip() == f"refresh already running (pid {first.pid})"
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert _lock_pid(root) == first.pid  # the dead holder's pid is still in the file
    third = run_cli(root, config, slow_sandbox.url, "refresh", "--json")
    assert third.returncode == 0, third.stderr
    assert as_json(third)["resumed_from"] is not None
    assert _lock_pid(root) is None  # released: emptied, not deleted


@pytest.mark.slow
def test_refresh_killed_midway_resumes_with_only_the_remainder(
    tmp_path: Path, slow_sandbox: SandboxServer
) -> None:
    root = generated_root(tmp_path, 8)
    config = _slow_config(tmp_path)
    url = slow_sandbox.url
    proc = subprocess.Popen(
        argv(root, config, "refresh"),
        env=cli_env(url),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: cache_entries(root) >= 10, 40, "10 cache entries")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    at_kill = requests_by_service(url)
    cached_at_kill = cache_entries(root)
    assert cached_at_kill > 0
    resumed = run_cli(root, config, url, "refresh", "--json")
    assert resumed.returncode == 0, resumed.stderr
    body = as_json(resumed)
    spent = sum(delta(requests_by_service(url), at_kill).values())
    total = cache_entries(root)
    # 8 charts + SPY + ^VIX; 8 profiles; CIK map + 8 filings; 5 FRED; IMF; 2 CoinGecko.
    assert total == 35
    assert body["resumed_from"] is not None
    # Only the remainder: nothing cached before the kill is fetched again.
    assert spent == total - cached_at_kill == body["refreshed"]
    assert body["skipped_fresh"] == cached_at_kill
    # And the cycle is complete: a further refresh right away has nothing to do but CoinGecko
    # (15-minute TTL, shorter than the horizon) — and the 10 charts when the next US close
    # (their expiry) falls within the 12-hour horizon, as it does from 09:00 to 21:00 UTC.
    before = requests_by_service(url)
    now = datetime.now(UTC)
    again = as_json(run_cli(root, config, url, "refresh", "--json"))
    assert again["resumed_from"] is None
    expected = {"coingecko": 2}
    if next_market_close(now) - now <= timedelta(hours=12):
        expected["yahoo_finance"] = 10
    assert delta(requests_by_service(url), before) == expected


@pytest.mark.slow
def test_refresh_and_discover_at_the_same_time(tmp_path: Path, slow_sandbox: SandboxServer) -> None:
    """A nightly refresh and an interactive discover share the cache, quotas and ledger at
    once: both finish, neither sees "database is locked", and every entry stays sound."""
    root = generated_root(tmp_path, 6)
    config = write_fast_config(tmp_path / "tradescout.toml")
    procs = [
        subprocess.Popen(
            argv(root, config, *args),
            env=cli_env(slow_sandbox.url),
            cwd=root.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in (("refresh", "--json"), ("discover", "gen", "--json"))
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err
        assert json.loads(out)
    verify = run_cli(root, config, slow_sandbox.url, "cache", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    with Ledger.in_state_dir(DataLayout(root).state_dir) as ledger:
        kinds = sorted(run.kind for run in ledger.recent_runs(10))
    assert kinds == ["discover", "refresh"]
    # Afterwards a discover is served from the cache alone.
    before = sum(requests_by_service(slow_sandbox.url).values())
    again = run_cli(root, config, slow_sandbox.url, "discover", "gen", "--json")
    assert again.returncode == 0, again.stderr
    assert sum(requests_by_service(slow_sandbox.url).values()) == before
