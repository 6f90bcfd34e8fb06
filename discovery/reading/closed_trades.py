"""The report's closed trades, reduced to what a realized-equity view needs.

Inline (`closed_trades: [...]`) or, for large portfolios, a JSON-lines file beside the report
(`closed_trades: {path, count}`, the path relative to the report's folder and never outside
it). Only (exit date, PnL, currency) is kept, in arrays: a million trades cost ~20 MB.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import field
from datetime import date
from pathlib import Path
from typing import Any

from services.recordclass import record

MAX_TRADES = 2_000_000
MAX_LINE_BYTES = 64 << 10


@record(frozen=False)
class TradeColumns:
    """Per currency (None: the report names none): exit-date ordinals and PnL, file order."""

    days: dict[str | None, array[int]] = field(default_factory=dict)
    pnl: dict[str | None, array[float]] = field(default_factory=dict)
    skipped: int = 0

    def add(self, record: Mapping[str, Any]) -> None:
        day = _exit_day(record)
        value = record.get("pnl")
        if day is None or isinstance(value, bool) or not isinstance(value, int | float):
            self.skipped += 1
            return
        cur = record.get("currency")
        key = cur if isinstance(cur, str) else None
        self.days.setdefault(key, array("l")).append(day.toordinal())
        self.pnl.setdefault(key, array("d")).append(float(value))

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.pnl.values())


def _exit_day(record: Mapping[str, Any]) -> date | None:
    raw = record.get("exit_date") or record.get("exit_timestamp")
    if not isinstance(raw, str) or len(raw) < 10:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        return None


def _lines(path: Path) -> Iterable[dict[str, Any]]:
    with path.open("rb") as fh:
        for n, line in enumerate(fh):
            if n >= MAX_TRADES:
                return
            if len(line) > MAX_LINE_BYTES or not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                yield item


def closed_trades(report: Mapping[str, Any], report_path: Path) -> tuple[TradeColumns | None, str]:
    """(the trades, or None; a one-line note on where they came from or why there are none)."""
    value = report.get("closed_trades")
    cols = TradeColumns()
    if isinstance(value, list):
        for item in value[:MAX_TRADES]:
            if isinstance(item, Mapping):
                cols.add(item)
        return cols, "from the report's closed_trades"
    if isinstance(value, Mapping) and isinstance(value.get("path"), str):
        folder = report_path.parent.resolve()
        path = (folder / value["path"]).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            return None, f"closed_trades file {value['path'][:80]!r} is not beside the report"
        for item in _lines(path):
            cols.add(item)
        return cols, f"from {path.name}"
    return None, "this report has no closed_trades section"
