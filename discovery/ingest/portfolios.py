"""Which trade-history file a portfolio name means.

A portfolio `P` is `raw/trade_history/P.csv` or one of `P_YYYYMMDD.csv`. The date in the name
decides, never the file's mtime (copies and checkouts reset mtimes).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from discovery.errors import InputError
from discovery.layout import DataLayout, check_portfolio_name

_DATED = re.compile(r"^(?P<name>.+)_(?P<day>\d{8})$")


def _dated(stem: str) -> tuple[str, date] | None:
    """`P_YYYYMMDD` → (P, date); None when the suffix is not a real calendar date."""
    match = _DATED.match(stem)
    if match is None:
        return None
    digits = match["day"]
    try:
        day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None
    return match["name"], day


def _csv_files(layout: DataLayout) -> list[Path]:
    folder = layout.trade_history_dir
    if not folder.is_dir():
        return []
    return [
        p
        for p in folder.iterdir()
        if p.suffix.lower() == ".csv" and not p.name.startswith(".") and p.is_file()
    ]


def list_portfolios(layout: DataLayout) -> list[str]:
    """Portfolio names present under the data root, sorted (dated and plain files merged)."""
    names: set[str] = set()
    for path in _csv_files(layout):
        dated = _dated(path.stem)
        names.add(dated[0] if dated else path.stem)
    return sorted(n for n in names if _is_valid_name(n))


def resolve_portfolio(layout: DataLayout, name: str) -> Path:
    """The trade-history file for portfolio `name`.

    Rule: the dated file with the latest date in its name wins; the plain `P.csv` is used only
    when no dated file exists. A dated file says when it was exported, a plain one does not, and
    a plain file is never judged by its mtime. Unknown name → `InputError` listing what exists.
    """
    check_portfolio_name(name)
    plain: Path | None = None
    latest: tuple[date, Path] | None = None
    for path in _csv_files(layout):
        if path.stem == name:
            plain = path
            continue
        dated = _dated(path.stem)
        if dated and dated[0] == name and (latest is None or dated[1] > latest[0]):
            latest = (dated[1], path)
    if latest is not None:
        return latest[1]
    if plain is not None:
        return plain
    existing = list_portfolios(layout)
    known = (
        ", ".join(existing[:20]) + (f" and {len(existing) - 20} more" if len(existing) > 20 else "")
        if existing
        else "none"
    )
    raise InputError(
        f"No portfolio {name!r} in data root {layout.root} (looked in "
        f"{layout.trade_history_dir} for {name}.csv or {name}_YYYYMMDD.csv); portfolios there: "
        f"{known}. Point at another data root with --data-root PATH or TRADESCOUT_DATA_ROOT.",
        path=layout.trade_history_dir,
    )


def _is_valid_name(name: str) -> bool:
    try:
        check_portfolio_name(name)
    except InputError:
        return False
    return True
