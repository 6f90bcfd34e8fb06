"""Stage 0: what local analysis already exists for the portfolio's tickers.

Each analysis folder is listed once (`os.scandir`); file names say the ticker or sector and the
date (`{TICKER}_{YYYYMMDD}.md`, split on the last underscore because tickers never contain one,
sector names may). The latest file per ticker is chosen by the date in its name — never by mtime,
which copies and checkouts rewrite — and only that file of each requested ticker is read, so the
cost is one directory listing plus one small read per covered ticker.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field, fields
from datetime import date
from pathlib import Path
from typing import Any

from discovery.errors import InputError, clip
from discovery.layout import DataLayout
from discovery.local.analysis_files import parse_fundamental, parse_sector_file
from discovery.local.sectors import canonical_sector
from discovery.tickers import is_valid_ticker, normalize_ticker
from services.recordclass import record

DEFAULT_MAX_AGE_DAYS = 30
MAX_ANALYSIS_BYTES = 2 * 1024 * 1024
"""Analysis notes are small markdown files; a larger one is refused before it is read."""
MAX_LISTED_NAMES = 200
"""Unrecognized or skipped names listed per folder (each list says how many there were)."""


@record
class SkippedFile:
    """A name in an analysis folder that was not opened, and why (a data-quality note)."""

    file: str  # relative to the data root, made printable
    reason: str  # outside_data_root | unreadable_name | broken_link | not_listable

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "reason": self.reason}


_UNLISTED_FIELDS = frozenset({"older_versions", "warnings"})
"""Entry fields the report states elsewhere (as counts and as the section's `warnings`)."""


def _entry_dict(entry: FundamentalEntry | SectorEntry, *, key: str) -> dict[str, Any]:
    """An entry as the report lists it under its `key` (so without it), in field order: one
    serializer for both kinds, so a field added to an entry reaches the report by itself."""
    out: dict[str, Any] = {}
    for f in fields(entry):
        if f.name == key or f.name in _UNLISTED_FIELDS:
            continue
        value = getattr(entry, f.name)
        out[f.name] = value.isoformat() if isinstance(value, date) else value
    return out


@record
class FundamentalEntry:
    """The latest fundamental file of one ticker and what it states (None = not stated)."""

    ticker: str
    file: str  # relative to the data root, POSIX separators
    date: date
    age_days: int
    stale: bool
    recommendation: str | None
    conviction: float | None
    fair_value_low: float | None
    fair_value_high: float | None
    current_price: float | None
    sector: str | None  # canonical (discovery.local.sectors)
    older_versions: int = 0
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _entry_dict(self, key="ticker")


@record
class DatedFile:
    """One analysis file by the date in its name (not read: only the latest one is)."""

    file: str  # relative to the data root, POSIX separators
    date: date

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "date": self.date.isoformat()}


@record
class SectorEntry:
    """The latest sector file of one canonical sector."""

    sector: str
    file: str
    date: date
    age_days: int
    stale: bool
    recommendation: str | None
    confidence: float | None
    older_versions: int = 0
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _entry_dict(self, key="sector")


@record
class Coverage:
    """Tickers with a local fundamental file (stale ones included) over all requested tickers."""

    with_analysis: int
    total: int

    @property
    def ratio(self) -> float:
        return round(self.with_analysis / self.total, 4) if self.total else 0.0


@record
class Inventory:
    """Stage 0's result. `fundamentals` keeps the requested order; None means no local file."""

    today: date
    max_age_days: int
    fundamentals: Mapping[str, FundamentalEntry | None]
    sectors: Mapping[str, SectorEntry]
    unrecognized_fundamental_files: tuple[str, ...] = ()
    unrecognized_sector_files: tuple[str, ...] = ()
    rejected_tickers: tuple[str, ...] = ()
    skipped_fundamental_files: tuple[SkippedFile, ...] = ()
    skipped_sector_files: tuple[SkippedFile, ...] = ()
    # Every dated fundamental file of each requested ticker, oldest first (the latest is the
    # entry in `fundamentals`): which analysis was current on a given day.
    dated_files: Mapping[str, tuple[DatedFile, ...]] = field(default_factory=dict)

    def file_current_on(self, ticker: str, day: date) -> DatedFile | None:
        """The newest fundamental file of `ticker` dated on or before `day`, if any."""
        current = None
        for dated in self.dated_files.get(ticker, ()):
            if dated.date > day:
                break
            current = dated
        return current

    @property
    def unrecognized_files(self) -> tuple[str, ...]:
        """Files in the analysis folders whose names follow no rule (relative to the data root)."""
        return (*self.unrecognized_fundamental_files, *self.unrecognized_sector_files)

    @property
    def coverage(self) -> Coverage:
        found = sum(entry is not None for entry in self.fundamentals.values())
        return Coverage(with_analysis=found, total=len(self.fundamentals))

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(t for t, entry in self.fundamentals.items() if entry is None)

    @property
    def stale(self) -> tuple[str, ...]:
        return tuple(t for t, entry in self.fundamentals.items() if entry and entry.stale)

    def entries(self) -> dict[str, FundamentalEntry]:
        """The requested tickers that have a local fundamental file (stale ones included)."""
        return {t: e for t, e in self.fundamentals.items() if e is not None}

    def fresh_files(self) -> dict[str, str]:
        """Ticker → file for fresh local files that state a sector: these replace a profile fetch.

        A stale file, or one that does not say the sector, leaves the profile to be fetched.
        """
        return {
            t: e.file
            for t, e in self.fundamentals.items()
            if e is not None and not e.stale and e.sector is not None
        }

    @property
    def stale_sectors(self) -> tuple[str, ...]:
        return tuple(s for s, entry in self.sectors.items() if entry.stale)

    def to_report_section(self) -> dict[str, Any]:
        """JSON-ready `local_data_integration` content (the lead adds `cache_inventory`)."""
        coverage = self.coverage
        warnings = [
            {"ticker": t, "file": e.file, "message": w}
            for t, e in self.fundamentals.items()
            if e is not None
            for w in e.warnings
        ]
        sector_warnings = [
            {"sector": s, "file": e.file, "message": w}
            for s, e in self.sectors.items()
            for w in e.warnings
        ]
        return {
            "fundamental_analysis": {
                "coverage": {
                    "with_analysis": coverage.with_analysis,
                    "total": coverage.total,
                    "ratio": coverage.ratio,
                },
                "max_age_days": self.max_age_days,
                "missing": list(self.missing),
                "stale": list(self.stale),
                "tickers": {
                    t: (e.to_dict() if e is not None else None)
                    for t, e in self.fundamentals.items()
                },
                "warnings": warnings,
                "unrecognized_files": list(self.unrecognized_fundamental_files[:MAX_LISTED_NAMES]),
                "unrecognized_count": len(self.unrecognized_fundamental_files),
                "skipped_files": [f.to_dict() for f in self.skipped_fundamental_files],
            },
            "sector_analysis": {
                "sectors": {s: e.to_dict() for s, e in sorted(self.sectors.items())},
                "stale": sorted(self.stale_sectors),
                "warnings": sector_warnings,
                "unrecognized_files": list(self.unrecognized_sector_files[:MAX_LISTED_NAMES]),
                "unrecognized_count": len(self.unrecognized_sector_files),
                "skipped_files": [f.to_dict() for f in self.skipped_sector_files],
            },
        }


# --- file names -------------------------------------------------------------------------------


def split_dated_name(name: str) -> tuple[str, date] | None:
    """`BRK-B_20260101.md` → ("BRK-B", 2026-01-01); None when the name is not `{stem}_{date}.md`."""
    if len(name) < 13 or name[-3:].lower() != ".md":
        return None
    stem, sep, day = name[:-3].rpartition("_")
    if not sep or not stem or len(day) != 8 or not day.isdigit():
        return None
    try:
        return stem, date(int(day[:4]), int(day[4:6]), int(day[6:]))
    except ValueError:
        return None


@record(frozen=False)
class _Latest:
    """The newest file seen for one key while a directory is listed."""

    name: str
    day: date
    path: str
    versions: int = 1
    every: list[tuple[date, str]] = field(default_factory=list)  # (date, name) of each file


@record(frozen=False)
class _Listing:
    """One analysis folder: the latest file per key, unrecognized names, skipped names."""

    latest: dict[str, _Latest]
    unrecognized: list[str]
    skipped: list[SkippedFile]


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _printable(name: str) -> str:
    """A file name as text a report can carry (undecodable bytes shown as U+FFFD), capped."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return clip(text, 120)


def _scan_dir(
    directory: Path, key_of: Callable[[str], str | None], rel_dir: str, root_real: str
) -> _Listing:
    """One listing of `directory`: latest file per key, and the names no rule recognized.

    Dotfiles (`.gitkeep`) and sub-directories are skipped silently. A missing folder holds no
    analysis (a fresh data root); an unlistable one is an input error. Only files that resolve
    inside the data root are candidates: a symlink that leaves it, a broken or looping link and
    a name that is not valid UTF-8 are skipped with a note, never opened.
    """
    listing = _Listing({}, [], [])
    real_dir = os.path.realpath(directory)
    if not _inside(real_dir, root_real):
        if os.path.isdir(directory):
            listing.skipped.append(SkippedFile(rel_dir, "outside_data_root"))
        return listing
    try:
        entries = os.scandir(directory)
    except FileNotFoundError:
        return listing
    except OSError as exc:
        raise InputError(
            f"Cannot list the analysis folder {directory}: {exc.strerror or exc}.", path=directory
        ) from None
    latest, unrecognized, skipped = listing.latest, listing.unrecognized, listing.skipped
    with entries:
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            shown = f"{rel_dir}/{_printable(name)}"
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                skipped.append(SkippedFile(shown, "unreadable_name"))
                continue
            try:
                link = entry.is_symlink()
                real = os.path.realpath(entry.path) if link else os.path.join(real_dir, name)
                if link and not _inside(real, root_real):
                    skipped.append(SkippedFile(shown, "outside_data_root"))
                    continue
                if not entry.is_file():
                    if link and not os.path.exists(real):
                        skipped.append(SkippedFile(shown, "broken_link"))
                    continue
            except OSError:  # a link loop, a name too long to resolve, a vanished entry
                skipped.append(SkippedFile(shown, "broken_link"))
                continue
            parsed = split_dated_name(name)
            key = key_of(parsed[0]) if parsed else None
            if parsed is None or key is None:
                unrecognized.append(shown)
                continue
            day = parsed[1]
            seen = latest.get(key)
            if seen is None:
                latest[key] = _Latest(name, day, real, every=[(day, name)])
            else:
                seen.versions += 1
                seen.every.append((day, name))
                # Latest date wins; on a same-date tie (AAPL_ vs aapl_) the smaller name, so the
                # choice does not depend on listing order.
                if (day, seen.name) > (seen.day, name):
                    seen.name, seen.day, seen.path = name, day, real
    unrecognized.sort()
    skipped.sort(key=lambda f: f.file)
    return listing


def _ticker_key(stem: str) -> str | None:
    ticker = normalize_ticker(stem)
    return ticker if is_valid_ticker(ticker) else None


def read_analysis_file(path: str, shown: str) -> str:
    """The text of one analysis file; unreadable, too large, binary or non-UTF-8 → InputError.

    The size is checked before reading and at most MAX_ANALYSIS_BYTES + 1 bytes are read, so a
    4 GB (sparse) file costs one `fstat`, not 4 GB of memory. `path` is the resolved path inside
    the data root; it is opened without following a link, so it cannot be swapped for one.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputError(
            f"Cannot read analysis file {shown}: {exc.strerror or exc}.", path=shown
        ) from None
    with os.fdopen(fd, "rb") as handle:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise InputError(f"Analysis file {shown} is not a regular file.", path=shown)
            if info.st_size > MAX_ANALYSIS_BYTES:
                raise _too_large(shown, info.st_size)
            data = handle.read(MAX_ANALYSIS_BYTES + 1)
        except OSError as exc:
            raise InputError(
                f"Cannot read analysis file {shown}: {exc.strerror or exc}.", path=shown
            ) from None
    if len(data) > MAX_ANALYSIS_BYTES:
        raise _too_large(shown, len(data))
    if b"\x00" in data:
        raise InputError(
            f"Analysis file {shown} is binary, not markdown text; remove it or replace it.",
            path=shown,
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"Analysis file {shown} is not UTF-8 text (bad byte at offset {exc.start}); "
            "re-save it as UTF-8.",
            path=shown,
        ) from None


def _too_large(shown: str, size: int) -> InputError:
    return InputError(
        f"Analysis file {shown} is {size / 1e6:,.1f} MB; analysis notes are read only up to "
        f"{MAX_ANALYSIS_BYTES // (1024 * 1024)} MB: shrink or remove it.",
        path=shown,
    )


# --- stage 0 --------------------------------------------------------------------------------------


def _relative_dir(layout: DataLayout, directory: Path) -> str:
    try:
        return directory.relative_to(layout.root).as_posix()
    except ValueError:
        return directory.as_posix()


def build_inventory(
    layout: DataLayout,
    tickers: Iterable[str],
    *,
    today: date,
    max_age_days: int = DEFAULT_MAX_AGE_DAYS,
) -> Inventory:
    """Latest fundamental file per requested ticker and latest sector file per sector.

    Requested tickers are normalized (upper-case) and de-duplicated in order. One that is not a
    plausible symbol is never matched against a file name nor counted in coverage: it is only
    listed in `rejected_tickers` (ingest refuses such tickers before this stage runs).
    File errors (unreadable, binary, not UTF-8) raise InputError naming the file — only for the
    files this run reads: the latest of each requested ticker and the latest of each sector.
    """
    requested: dict[str, None] = {}  # ordered set
    rejected: dict[str, None] = {}
    for raw in tickers:
        ticker = normalize_ticker(raw)
        (requested if is_valid_ticker(ticker) else rejected)[ticker] = None

    root_real = os.path.realpath(layout.root)
    fund_rel = _relative_dir(layout, layout.fundamental_dir)
    fund = _scan_dir(layout.fundamental_dir, _ticker_key, fund_rel, root_real)
    latest = fund.latest
    fundamentals: dict[str, FundamentalEntry | None] = {}
    dated: dict[str, tuple[DatedFile, ...]] = {}
    for ticker in requested:
        seen = latest.get(ticker)
        if seen is None:
            fundamentals[ticker] = None
            continue
        dated[ticker] = tuple(
            DatedFile(f"{fund_rel}/{name}", day) for day, name in sorted(seen.every)
        )
        shown = f"{fund_rel}/{seen.name}"
        facts = parse_fundamental(read_analysis_file(seen.path, shown))
        age = (today - seen.day).days
        warnings = facts.warnings if age >= 0 else (*facts.warnings, "dated in the future")
        fundamentals[ticker] = FundamentalEntry(
            ticker=ticker,
            file=shown,
            date=seen.day,
            age_days=age,
            stale=age > max_age_days,
            recommendation=facts.recommendation,
            conviction=facts.conviction,
            fair_value_low=facts.fair_value_low,
            fair_value_high=facts.fair_value_high,
            current_price=facts.current_price,
            sector=facts.sector,
            older_versions=seen.versions - 1,
            warnings=warnings,
        )

    sector_rel = _relative_dir(layout, layout.sector_dir)
    sector_listing = _scan_dir(layout.sector_dir, canonical_sector, sector_rel, root_real)
    sector_latest = sector_listing.latest
    sectors: dict[str, SectorEntry] = {}
    for sector, seen in sorted(sector_latest.items()):
        shown = f"{sector_rel}/{seen.name}"
        sector_facts = parse_sector_file(read_analysis_file(seen.path, shown))
        age = (today - seen.day).days
        sectors[sector] = SectorEntry(
            sector=sector,
            file=shown,
            date=seen.day,
            age_days=age,
            stale=age > max_age_days,
            recommendation=sector_facts.recommendation,
            confidence=sector_facts.confidence,
            older_versions=seen.versions - 1,
            warnings=sector_facts.warnings,
        )

    return Inventory(
        today=today,
        max_age_days=max_age_days,
        fundamentals=fundamentals,
        sectors=sectors,
        unrecognized_fundamental_files=tuple(fund.unrecognized),
        unrecognized_sector_files=tuple(sector_listing.unrecognized),
        rejected_tickers=tuple(rejected),
        skipped_fundamental_files=tuple(fund.skipped[:MAX_LISTED_NAMES]),
        skipped_sector_files=tuple(sector_listing.skipped[:MAX_LISTED_NAMES]),
        dated_files=dated,
    )
