"""The cache hit-ratio trend of `discover` runs, as the run ledger recorded it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TREND_DAYS = 30


def hit_ratio_trend(
    state_dir: Path, days: int = TREND_DAYS
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """(daily trend oldest first, or None without a ledger; a warning when it is unreadable).

    Only an existing ledger is opened: a data root without one stays without one."""
    from discovery.runs.ledger import LEDGER_FILENAME, Ledger, LedgerError

    path = state_dir / LEDGER_FILENAME
    if not path.is_file():
        return None, None
    try:
        with Ledger(path) as ledger:
            return ledger.hit_ratio_trend(days, kind="discover"), None
    except LedgerError as exc:
        return None, f"run ledger unreadable, no trend shown ({exc})"
