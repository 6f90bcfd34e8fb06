"""Where a run leaves its trace: the history copy, the daily report and the ledger row."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discovery.runs.ledger import Ledger
from discovery.runs.record import record_run

STARTED = datetime.now(UTC).replace(microsecond=0)  # within the ledger's retention


def _record(tmp_path: Path, report: dict[str, Any], history_body: dict[str, Any]) -> Path:
    history = tmp_path / "out" / "history" / "demo_20261121T090000Z-0a1b2c3d.json"
    record_run(
        tmp_path / "state",
        tmp_path / "out" / "demo_20261121.json",
        report,
        run_id="20261121T090000Z-0a1b2c3d",
        kind="discover",
        portfolio="demo",
        started_at=STARTED,
        duration_ms=12.5,
        usage={"fmp": {"network_requests": 0, "cache_hits": 4}},
        gaps=0,
        peak_rss_mb=100.0,
        exit_code=0,
        upstream="sandbox",
        history=(history, history_body),
    )
    return history


def test_the_daily_report_and_its_history_copy_hold_the_report(tmp_path: Path) -> None:
    report = {"portfolio": "demo", "value": 1.5, "none": None, "text": "é"}
    history = _record(tmp_path, report, report)
    daily = tmp_path / "out" / "demo_20261121.json"
    assert json.loads(daily.read_text("utf-8")) == report
    assert daily.read_bytes() == history.read_bytes()
    with Ledger.in_state_dir(tmp_path / "state") as ledger:
        (row,) = ledger.recent_runs()
    assert (row.run_id, row.cache_hits, row.network_requests) == ("20261121T090000Z-0a1b2c3d", 4, 0)


def test_a_history_copy_that_differs_is_written_as_itself(tmp_path: Path) -> None:
    report = {"closed_trades": {"path": "history/demo.closed_trades.jsonl", "count": 2}}
    copy = {"closed_trades": {"path": "demo.closed_trades.jsonl", "count": 2}}
    history = _record(tmp_path, report, copy)
    assert json.loads(history.read_text("utf-8")) == copy
    daily = tmp_path / "out" / "demo_20261121.json"
    assert json.loads(daily.read_text("utf-8")) == report


def test_history_pruning_takes_a_run_s_report_records_and_note_together(tmp_path: Path) -> None:
    from datetime import date, timedelta

    from discovery.runs.record import RETENTION_DAYS, prune_history

    old, new = "20260101T010000Z-aaaaaaaa", "20261201T010000Z-bbbbbbbb"
    names = [
        f"demo_{run}{ext}"
        for run in (old, new)
        for ext in (".json", ".closed_trades.jsonl", ".closed_trades.inputs")
    ]
    for name in [*names, f"demo2_{old}.json"]:
        (tmp_path / name).write_text("{}", encoding="utf-8")
    today = date(2026, 1, 1) + timedelta(days=RETENTION_DAYS + 1)
    assert prune_history(tmp_path, "demo", today) == 3
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*names[3:], f"demo2_{old}.json"])
