"""The run ledger: round trip, retention, hit-ratio trend, schema version, two writers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from discovery.runs.ledger import (
    LEDGER_FILENAME,
    SCHEMA_VERSION,
    Ledger,
    LedgerError,
    RunRecord,
    hit_ratio,
)
from tests.conftest import REPO

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


def run(
    run_id: str,
    started_at: datetime,
    *,
    kind: str = "discover",
    hits: int = 0,
    net: int = 0,
    per_service: dict[str, dict[str, int | float | str | None]] | None = None,
) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        kind=kind,
        portfolio="demo" if kind == "discover" else None,
        started_at=started_at,
        duration_ms=1234,
        network_requests=net,
        cache_hits=hits,
        gaps=2,
        peak_rss_mb=87.5,
        exit_code=3,
        upstream="sandbox",
        per_service=per_service or {},
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "state" / LEDGER_FILENAME, clock=lambda: NOW) as led:
        yield led


def test_round_trip_keeps_every_field_and_per_service_figures(ledger: Ledger) -> None:
    started = datetime(2026, 11, 21, 2, 30, 5, tzinfo=CET)
    services: dict[str, dict[str, int | float | str | None]] = {
        "fmp": {
            "planned": 20,
            "cache_hits": 5,
            "network_requests": 15,
            "retries": 1,
            "rate_limited": 0,
            "errors": 2,
            "breaker_state": "closed",
            "quota_used_today": 15,
        },
        "yahoo_finance": {"planned": 33, "network_requests": 33, "breaker_state": "open"},
        # Shaped like ServiceHub.usage(): extra keys (bools, floats, None) ride along.
        "imf": {
            "planned": 1,
            "note": "batched",
            "latency_ms_p50": 51.5,
            "quota_exhausted_for_run": False,
            "quota_used_today": None,
        },
    }
    record = run("r1", started, hits=5, net=49, per_service=services)
    ledger.record_run(record)

    [back] = ledger.recent_runs(5)
    assert back.started_at == started and back.started_at.utcoffset() == timedelta(hours=1)
    assert (back.run_id, back.kind, back.portfolio, back.upstream) == (
        "r1",
        "discover",
        "demo",
        "sandbox",
    )
    assert (back.duration_ms, back.network_requests, back.cache_hits, back.gaps) == (1234, 49, 5, 2)
    assert (back.peak_rss_mb, back.exit_code) == (87.5, 3)
    assert back.per_service["fmp"] == services["fmp"]
    # Figures not given come back as None; unknown ones survive through the JSON column.
    assert back.per_service["yahoo_finance"]["retries"] is None
    assert back.per_service["yahoo_finance"]["breaker_state"] == "open"
    assert back.per_service["imf"]["note"] == "batched"
    assert back.per_service["imf"]["latency_ms_p50"] == 51.5
    assert back.per_service["imf"]["quota_exhausted_for_run"] is False
    assert back.per_service["imf"]["quota_used_today"] is None
    assert set(back.per_service) == {"fmp", "yahoo_finance", "imf"}


def test_recording_the_same_run_twice_replaces_it(ledger: Ledger) -> None:
    ledger.record_run(run("r1", NOW, net=5, per_service={"fmp": {"planned": 5}, "imf": {}}))
    ledger.record_run(run("r1", NOW, net=7, per_service={"fmp": {"planned": 7}}))
    [back] = ledger.recent_runs(10)
    assert back.network_requests == 7
    assert set(back.per_service) == {"fmp"} and back.per_service["fmp"]["planned"] == 7


def test_recent_runs_are_newest_first_limited_and_filterable(ledger: Ledger) -> None:
    for i in range(5):
        kind = "refresh" if i % 2 else "discover"
        ledger.record_run(run(f"r{i}", NOW - timedelta(hours=5 - i), kind=kind))
    assert [r.run_id for r in ledger.recent_runs(3)] == ["r4", "r3", "r2"]
    assert [r.run_id for r in ledger.recent_runs(10, kind="refresh")] == ["r3", "r1"]
    assert ledger.recent_runs(0) == []


def test_rows_older_than_90_days_are_pruned_on_every_write(ledger: Ledger) -> None:
    ledger.record_run(run("old", NOW - timedelta(days=91), per_service={"fmp": {"planned": 1}}))
    ledger.record_run(run("edge", NOW - timedelta(days=89)))
    # Recording "old" pruned itself: it was already past retention.
    assert {r.run_id for r in ledger.recent_runs(10)} == {"edge"}
    ledger.record_run(run("new", NOW))
    assert {r.run_id for r in ledger.recent_runs(10)} == {"edge", "new"}
    db = sqlite3.connect(ledger.path)
    assert db.execute("SELECT COUNT(*) FROM run_services WHERE run_id = 'old'").fetchone() == (0,)
    db.close()
    assert ledger.prune(older_than_days=30) == 1
    assert [r.run_id for r in ledger.recent_runs(10)] == ["new"]


def test_hit_ratio_trend_groups_by_day_within_the_window(ledger: Ledger) -> None:
    day1 = datetime(2026, 11, 19, 8, 0, tzinfo=UTC)
    day2 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    ledger.record_run(run("a", day1, hits=0, net=34))  # cold
    ledger.record_run(run("b", day1 + timedelta(hours=1), hits=34, net=0))  # warm
    ledger.record_run(run("c", day2, hits=30, net=10))
    ledger.record_run(run("r", day2, kind="refresh", hits=0, net=40))
    ledger.record_run(run("z", day2 + timedelta(hours=2), hits=0, net=0))
    ledger.record_run(run("old", NOW - timedelta(days=40), hits=1, net=1))

    trend = ledger.hit_ratio_trend(30)
    assert trend == [
        {
            "day": "2026-11-19",
            "runs": 2,
            "cache_hits": 34,
            "network_requests": 34,
            "hit_ratio": 0.5,
        },
        {
            "day": "2026-11-20",
            "runs": 3,
            "cache_hits": 30,
            "network_requests": 50,
            "hit_ratio": 0.375,
        },
    ]
    discover_only = ledger.hit_ratio_trend(30, kind="discover")
    assert discover_only[1] == {
        "day": "2026-11-20",
        "runs": 2,
        "cache_hits": 30,
        "network_requests": 10,
        "hit_ratio": 0.75,
    }
    wider = ledger.hit_ratio_trend(60)
    assert [d["day"] for d in wider] == ["2026-10-12", "2026-11-19", "2026-11-20"]
    # The last 24 h hold only run "z", which neither hit nor fetched: no ratio, not 0.
    assert ledger.hit_ratio_trend(1) == [
        {"day": "2026-11-20", "runs": 1, "cache_hits": 0, "network_requests": 0, "hit_ratio": None}
    ]


def test_trend_day_is_the_runs_own_calendar_day(ledger: Ledger) -> None:
    # 00:30 in UTC+1 is still the previous day in UTC; the trader's day is the local one.
    ledger.record_run(run("late", datetime(2026, 11, 21, 0, 30, tzinfo=CET), hits=1, net=1))
    assert [d["day"] for d in ledger.hit_ratio_trend(7)] == ["2026-11-21"]


def test_service_totals_sum_figures_per_service(ledger: Ledger) -> None:
    ledger.record_run(run("a", NOW, per_service={"fmp": {"planned": 3, "network_requests": 2}}))
    ledger.record_run(run("b", NOW, per_service={"fmp": {"planned": 4, "cache_hits": 4}}))
    totals = ledger.service_totals(30)
    assert totals["fmp"]["runs"] == 2
    assert totals["fmp"]["planned"] == 7
    assert totals["fmp"]["network_requests"] == 2
    assert totals["fmp"]["cache_hits"] == 4


def test_hit_ratio_helper() -> None:
    assert hit_ratio(0, 0) is None
    assert hit_ratio(3, 1) == 0.75


def test_invalid_records_are_refused_before_writing(ledger: Ledger) -> None:
    naive = datetime(2026, 11, 21, 2, 30)
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.record_run(run("n", naive))
    with pytest.raises(ValueError, match="kind"):
        ledger.record_run(run("k", NOW, kind="nightly"))
    with pytest.raises(ValueError, match="must be a number"):
        ledger.record_run(run("s", NOW, per_service={"fmp": {"planned": "many"}}))
    assert ledger.recent_runs(10) == []


def test_schema_is_versioned_and_wal(ledger: Ledger) -> None:
    assert ledger.schema_version == SCHEMA_VERSION == 1
    db = sqlite3.connect(ledger.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_newer_schema_is_refused_with_a_sentence(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_FILENAME
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(LedgerError, match="schema version 99"):
        Ledger(path).open()
    assert not list(tmp_path.glob("*.damaged-*"))  # refused, never moved aside


def test_a_corrupt_file_is_moved_aside_and_the_ledger_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_FILENAME
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    with Ledger(path, clock=lambda: NOW) as led:
        assert led.rebuilt is not None and "moved to" in led.rebuilt
        led.record_run(run("a", NOW))
        assert [r.run_id for r in led.recent_runs(5)] == ["a"]
    (kept,) = tmp_path.glob(f"{LEDGER_FILENAME}.damaged-*")
    assert kept.read_bytes() == garbage  # moved, never deleted


def test_reopening_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_FILENAME
    with Ledger(path, clock=lambda: NOW) as led:
        led.record_run(run("a", NOW))
    with Ledger(path, clock=lambda: NOW) as led:
        assert [r.run_id for r in led.recent_runs(5)] == ["a"]


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from discovery.runs.ledger import Ledger, RunRecord

    path, tag, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    start = datetime.now(UTC)
    for i in range(count):
        # a fresh connection per run, as two CLI processes would do
        with Ledger(path) as led:
            led.record_run(RunRecord(
                run_id=f"{tag}-{i}", kind="refresh" if tag == "a" else "discover",
                portfolio=None, started_at=start + timedelta(milliseconds=i),
                duration_ms=i, network_requests=i, cache_hits=1, gaps=0, peak_rss_mb=1.0,
                exit_code=0, upstream="offline",
                per_service={"fmp": {"planned": i}, "imf": {"planned": 1}},
            ))
    print("done")
    """
)


def test_two_processes_write_at_the_same_time(tmp_path: Path) -> None:
    path = tmp_path / "state" / LEDGER_FILENAME
    count = 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), tag, str(count)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    with Ledger(path) as led:
        runs = led.recent_runs(1000)
    assert len(runs) == 2 * count
    assert {r.run_id for r in runs} == {f"{t}-{i}" for t in "ab" for i in range(count)}
    assert all(set(r.per_service) == {"fmp", "imf"} for r in runs)
