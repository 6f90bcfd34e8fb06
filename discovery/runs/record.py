"""Where a run leaves its trace: its report file (atomic) and its ledger row, for discover and
refresh alike. One place, so both kinds of run are written the same way and the CLI writes
nothing itself."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cache.atomic import atomic_write_json, probe_writable
from discovery.errors import storage_sentence
from discovery.runs.ledger import Ledger, LedgerError, RunRecord

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
) -> None:
    """Write the report, then append the run to the ledger. A disk that refuses the report is
    `StorageError`: one sentence, exit 3, no half-written file (the write is atomic)."""
    try:
        atomic_write_json(report_path, report)
    except OSError as exc:
        raise storage_sentence(report_path, exc, "the report") or exc from None
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
