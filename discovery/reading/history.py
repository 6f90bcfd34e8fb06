"""Where a portfolio's discovery reports are, and loading one safely.

The latest report is the daily file `{PORTFOLIO}_{YYYYMMDD}.json` with the newest date in its
name (never by mtime: copies reset it). The history is the `history/` folder beside the daily
files when it holds reports of the portfolio (every run's report), the daily files otherwise.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

from discovery.errors import InputError
from discovery.layout import DataLayout, check_portfolio_name
from services.recordclass import record

# A report is bounded by design (closed trades beyond 5,000 go to a JSON-lines file beside it);
# a file far beyond that is not one of ours and is refused before it is read.
MAX_REPORT_BYTES = 64 << 20
HISTORY_DIR = "history"
HISTORY_LIMIT = 200


@record
class ReportRef:
    """One report file: its path and what its name says (date; run id for history files)."""

    path: Path
    day: date | None
    run_id: str | None = None

    @property
    def sort_key(self) -> tuple[str, str, str]:
        return (self.day.isoformat() if self.day else "", self.run_id or "", self.path.name)


def _day(digits: str) -> date | None:
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def daily_reports(layout: DataLayout, portfolio: str) -> list[ReportRef]:
    """The daily files of `portfolio`, oldest first (only names with a real calendar date)."""
    check_portfolio_name(portfolio)
    folder = layout.discovery_dir
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(portfolio)}_(\d{{8}})\.json$")
    refs = []
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match and path.is_file():
            day = _day(match[1])
            if day is not None:
                refs.append(ReportRef(path, day))
    return sorted(refs, key=lambda r: r.sort_key)


def history_reports(layout: DataLayout, portfolio: str) -> list[ReportRef]:
    """Reports of `portfolio` in the history folder, oldest first: `{P}_{...}.json` files
    directly in it, or any `.json` in a `{P}/` subfolder (both layouts are accepted until the
    history's writer settles on one). The date is the first 8-digit run of the name's rest."""
    check_portfolio_name(portfolio)
    folder = layout.discovery_dir / HISTORY_DIR
    if not folder.is_dir():
        return []
    candidates: list[tuple[Path, str]] = []
    prefix = f"{portfolio}_"
    for path in folder.iterdir():
        if path.is_file() and path.suffix == ".json" and path.name.startswith(prefix):
            candidates.append((path, path.stem[len(prefix) :]))
    sub = folder / portfolio
    if sub.is_dir():
        candidates += [(p, p.stem) for p in sub.iterdir() if p.is_file() and p.suffix == ".json"]
    refs = []
    for path, rest in candidates:
        digits = re.search(r"\d{8}", rest)
        refs.append(ReportRef(path, _day(digits[0]) if digits else None, rest or None))
    return sorted(refs, key=lambda r: r.sort_key)[-HISTORY_LIMIT:]


def report_history(layout: DataLayout, portfolio: str) -> tuple[str, list[ReportRef]]:
    """("history" | "daily", reports oldest first)."""
    history = history_reports(layout, portfolio)
    if history:
        return "history", history
    return "daily", daily_reports(layout, portfolio)


def latest_report(layout: DataLayout, portfolio: str) -> ReportRef:
    """The newest daily report; a sentence saying what to run when there is none."""
    refs = daily_reports(layout, portfolio)
    if not refs and not layout.root.is_dir():
        raise InputError(
            f"Data root {layout.root} does not exist; pass --data-root with the folder that "
            "holds raw/trade_history.",
            path=layout.root,
        )
    if not refs:
        raise InputError(
            f"No discovery report for portfolio {portfolio!r} in {layout.discovery_dir}; "
            f"run `tradescout discover {portfolio}` first.",
            path=layout.discovery_dir,
        )
    return refs[-1]


def load_json_file(path: Path, what: str = "report") -> dict[str, Any]:
    """A JSON object from `path`, size-checked first; any problem is one sentence (exit 2)."""
    try:
        size = path.stat().st_size
        if size > MAX_REPORT_BYTES:
            raise InputError(
                f"{path}: {size:,} bytes is larger than a {what} can be "
                f"({MAX_REPORT_BYTES:,}); refusing to read it.",
                path=path,
            )
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}).", path=path) from None
    except (ValueError, RecursionError) as exc:
        detail = str(exc)[:80]
        raise InputError(f"{path}: is not valid JSON ({detail}).", path=path) from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: is not a {what} (a JSON object was expected).", path=path)
    return data


def load_report(ref: ReportRef) -> dict[str, Any]:
    report = load_json_file(ref.path)
    if "discovery_metadata" not in report or "portfolio" not in report:
        raise InputError(
            f"{ref.path}: is not a discovery report (no discovery_metadata).", path=ref.path
        )
    return report


def history_row(ref: ReportRef, report: dict[str, Any] | None) -> dict[str, Any]:
    """One line of `report --list`: what the file's metadata says (None fields if unreadable)."""
    meta = (report or {}).get("discovery_metadata") or {}
    gaps = (report or {}).get("gaps")
    return {
        "path": str(ref.path),
        "date": ref.day.isoformat() if ref.day else None,
        "run_id": meta.get("run_id") or ref.run_id,
        "executed_at": meta.get("execution_timestamp"),
        "upstream": meta.get("upstream"),
        "confidence_score": meta.get("confidence_score"),
        "gaps": len(gaps) if isinstance(gaps, list) else None,
        "readable": report is not None,
    }


def list_history(layout: DataLayout, portfolio: str) -> tuple[str, list[dict[str, Any]]]:
    """The history rows, newest first; an unreadable file is listed as such, not fatal."""
    source, refs = report_history(layout, portfolio)
    rows = []
    for ref in reversed(refs):
        try:
            report: dict[str, Any] | None = load_report(ref)
        except InputError:
            report = None
        rows.append(history_row(ref, report))
    return source, rows
