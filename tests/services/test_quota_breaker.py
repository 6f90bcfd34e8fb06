"""The quota ledger (two writers, UTC days, namespaces) and the breaker's state machine."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.breaker import BreakerState, CircuitBreaker
from services.errors import CircuitOpen
from services.quota import QuotaLedger
from services.retry import parse_retry_after
from tests.services.conftest import FakeClock

NOW = datetime(2026, 11, 21, 23, 59, 30, tzinfo=UTC)


def _spend(state_dir: str, attempts: int) -> int:
    ledger = QuotaLedger(Path(state_dir), clock=lambda: NOW)
    try:
        return sum(ledger.try_reserve("alpha_vantage", "live", 25) for _ in range(attempts))
    finally:
        ledger.close()


def test_two_writers_never_overspend(tmp_path: Path) -> None:
    QuotaLedger(tmp_path, clock=lambda: NOW).close()
    with ThreadPoolExecutor(max_workers=3) as pool:
        granted = sum(pool.map(_spend, [str(tmp_path)] * 3, [15, 15, 15]))
    assert granted == 25
    assert QuotaLedger(tmp_path, clock=lambda: NOW).used_today("alpha_vantage", "live") == 25


def test_two_processes_share_the_quota(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        granted = sum(pool.starmap(_spend, [(str(tmp_path), 20), (str(tmp_path), 20)]))
    assert granted == 25


def test_quota_days_are_utc_and_namespaced(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    ledger = QuotaLedger(tmp_path, clock=clock)
    assert ledger.try_reserve("fmp", "live", 1)
    assert not ledger.try_reserve("fmp", "live", 1)
    assert ledger.try_reserve("fmp", "sandbox", 1)
    assert ledger.left_today("fmp", "live", 1) == 0
    assert ledger.left_today("fmp", "live", None) is None
    clock.advance(31)  # 00:00:01 UTC the next day
    assert ledger.used_today("fmp", "live") == 0
    assert ledger.try_reserve("fmp", "live", 1)
    ledger.close()


def test_breaker_state_machine() -> None:
    clock = FakeClock(NOW)
    breaker = CircuitBreaker("svc", threshold=3, reset_seconds=10, clock=clock)
    for _ in range(2):
        assert breaker.admit() is False
        breaker.failure()
    breaker.admit()
    breaker.success()  # a success resets the consecutive count
    for _ in range(3):
        breaker.admit()
        breaker.failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        breaker.admit()
    clock.advance(10)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.admit() is True  # the probe
    with pytest.raises(CircuitOpen):
        breaker.admit()  # a second caller while the probe is out
    breaker.release(True)  # the probe ended without an answer (e.g. quota)
    assert breaker.admit() is True
    breaker.failure()
    assert breaker.state is BreakerState.OPEN and breaker.times_opened == 2
    clock.advance(10)
    assert breaker.admit() is True
    breaker.success()
    assert breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("-3", 0.0),
        ("Sun, 22 Nov 2026 00:00:00 GMT", 30.0),
        ("Sat, 21 Nov 2026 00:00:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_retry_after_date_relative_to_clock() -> None:
    later = NOW + timedelta(seconds=90)
    assert parse_retry_after(later.strftime("%a, %d %b %Y %H:%M:%S GMT"), NOW) == 90.0
