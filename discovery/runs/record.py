"""Where a run leaves its trace: its report file (atomic) and its ledger row, for discover and
refresh alike. One place, so both kinds of run are written the same way and the CLI writes
nothing itself.

A discover run never destroys an earlier report: its report is kept in the history folder
(`history/{PORTFOLIO}_{run_id}.json`, with its closed-trades file when it has one) and the
daily `{PORTFOLIO}_{YYYYMMDD}.json` is the latest of its day. History files older than the
ledger's retention (90 days) are removed when a run of the same portfolio is recorded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from cache.atomic import atomic_write_bytes, atomic_write_json, probe_writable
from discovery.errors import storage_sentence
from discovery.runs.ledger import RETENTION_DAYS, Ledger, LedgerError, RunRecord

log = logging.getLogger("tradescout")


def record_run(
    state_dir: Path,
    report_path: Path,
    report: Mapping[str, Any],
    *,
    run_id: str,
    kind: str,
    portfolio: str | None,
    started_at: datetime,
    duration_ms: float,
    usage: Mapping[str, Mapping[str, Any]],
    gaps: int,
    peak_rss_mb: float,
    exit_code: int,
    upstream: str,
    history: tuple[Path, Mapping[str, Any]] | None = None,
) -> None:
    """Write the report (its history copy first, when given: (path, report as written there)),
    then append the run to the ledger. A disk that refuses the report is `StorageError`: one
    sentence, exit 3, no half-written file (every write is atomic)."""
    writes = [history, (report_path, report)] if history is not None else [(report_path, report)]
    written: tuple[Path, Mapping[str, Any]] | None = None
    for path, body in writes:
        try:
            if written is not None and body is written[1]:  # the same report: its bytes again,
                atomic_write_bytes(path, written[0].read_bytes())  # not encoded a second time
            else:
                atomic_write_json(path, body)
        except OSError as exc:
            raise storage_sentence(path, exc, "the report") or exc from None
        written = (path, body)
    if history is not None and portfolio is not None:
        prune_history(history[0].parent, portfolio, started_at.date())
    record_in_ledger(
        state_dir,
        RunRecord(
            run_id=run_id,
            kind=kind,
            portfolio=portfolio,
            started_at=started_at,
            duration_ms=int(duration_ms),
            network_requests=sum(int(u.get("network_requests", 0)) for u in usage.values()),
            cache_hits=sum(int(u.get("cache_hits", 0)) for u in usage.values()),
            gaps=gaps,
            peak_rss_mb=round(peak_rss_mb, 1),
            exit_code=exit_code,
            upstream=upstream,
            per_service={k: dict(v) for k, v in usage.items()},
        ),
    )


def check_writable(report_path: Path) -> None:
    """Refuse a run whose report could not be kept, before it fetches anything (a read-only
    data root): `StorageError`, one sentence."""
    try:
        probe_writable(report_path.parent)
    except OSError as exc:
        raise storage_sentence(report_path.parent, exc, "the report") or exc from None


def record_in_ledger(state_dir: Path, row: RunRecord) -> None:
    """Append the run to the ledger; a broken ledger is a warning, never a failed run."""
    try:
        with Ledger.in_state_dir(state_dir) as ledger:
            ledger.record_run(row)
    except LedgerError as exc:
        log.warning("run ledger not updated: %s", exc)


_RUN_DAY = re.compile(
    r"_(\d{8})T\d{6}Z-[0-9a-f]+(?:\.json|\.closed_trades\.jsonl|\.closed_trades\.inputs)$"
)


def prune_history(folder: Path, portfolio: str, today: date) -> int:
    """Remove `portfolio`'s history files dated (by their run id) more than RETENTION_DAYS
    before `today`; best effort (a file that cannot be removed is left). Returns how many."""
    cutoff = today - timedelta(days=RETENTION_DAYS)
    removed = 0
    try:
        names = [p for p in folder.iterdir() if p.name.startswith(f"{portfolio}_")]
    except OSError:
        return 0
    for path in names:
        match = _RUN_DAY.search(path.name)
        if match is None or match.start() != len(portfolio):  # another portfolio's prefix
            continue
        digits = match[1]
        try:
            day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        except ValueError:
            continue
        if day < cutoff:
            try:
                path.unlink()
                removed += 1
            except OSError:
                log.warning("old report %s could not be removed", path.name)
    return removed
