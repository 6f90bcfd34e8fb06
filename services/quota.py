"""Daily request quotas, persisted in `data/state/quotas.sqlite`.

A quota must survive restarts (a cron refresh and an interactive run share Alpha Vantage's 25
calls a day) and two processes must never both spend the last call: every reservation is one
`BEGIN IMMEDIATE` transaction (SQLite serialises writers across processes). Days are UTC dates of
the injected clock, so the count resets at UTC midnight. Live and sandbox calls are counted in
separate namespaces (`upstream`), so tests against the simulator never spend real quota.
Every call is counted, also for services without a quota, so the report can show usage.

*Holds* (a refusal that tells tradescout to leave a service alone until a moment: Yahoo's bot
block, SEC's rate block, a daily limit the service declared spent) are not kept here: they are
"open until" flags of `services.coord` (state/coord.sqlite, or Redis), the one place such state
lives. Holds an earlier version kept in this file's `service_holds` table are handed over once
(`take_legacy_holds`) and removed.

A lost count is taken as spent, never as zero: a ledger that is garbage, truncated or a
directory (or a `state/` that is a file) is moved aside and started afresh with today marked
"count lost", so every service with a daily quota is spent until UTC midnight; a ledger that
cannot be written at all (a read-only or full disk) leaves those services uncalled for the run.
Services without a quota are never held back by either.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cache.atomic import move_aside, own_directory
from cache.errors import is_damaged_database, storage_fault
from services.recordclass import record

log = logging.getLogger("tradescout.services")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quota_usage (
    upstream TEXT NOT NULL,
    service  TEXT NOT NULL,
    day      TEXT NOT NULL,
    used     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (upstream, service, day)
);
CREATE TABLE IF NOT EXISTS quota_lost (
    day TEXT PRIMARY KEY,
    why TEXT NOT NULL
)
"""


@record
class LegacyHold:
    """A hold an earlier version kept in this ledger (see the module docstring)."""

    upstream: str
    service: str
    reason: str
    detail: str
    until: datetime


def next_utc_midnight(now: datetime) -> datetime:
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class QuotaLedger:
    """Counts calls per (upstream, service, UTC day) and refuses calls beyond a limit."""

    FILE_NAME = "quotas.sqlite"

    def __init__(self, state_dir: Path, *, clock: Callable[[], datetime]) -> None:
        self.path = state_dir / self.FILE_NAME
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._unsaved: str | None = None  # why counts cannot be saved this run, if they cannot
        self._lost_on: tuple[str, str | None] | None = None  # (day, why) as last read
        try:
            moved = own_directory(state_dir)
        except OSError as exc:
            self._cannot_count(f"state directory unusable ({storage_fault(exc) or exc})")
            return
        if moved is not None:
            self._open_afresh(f"{moved}; the quota counts in it were lost")
            return
        try:
            self._db = self._connect()
        except (sqlite3.Error, OSError) as exc:
            if self.path.is_dir() or self.path.is_symlink() or is_damaged_database(exc):
                self._open_afresh(f"{self.FILE_NAME} was damaged ({exc})", move=True)
            else:
                self._cannot_count(
                    f"{self.FILE_NAME} cannot be opened ({storage_fault(exc) or exc})"
                )

    # -- opening -------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.path.is_dir() or self.path.is_symlink():
            raise sqlite3.DatabaseError(f"{self.FILE_NAME} is not a regular file")
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            self._setup(db)
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _setup(db: sqlite3.Connection) -> None:
        """WAL mode and the tables. Switching to WAL needs an exclusive lock and SQLite may answer
        "database is locked" at once (no busy handler) when another process opens the file at
        the same moment, so the setup is retried for a while."""
        deadline = time.monotonic() + 30.0
        while True:
            try:
                mode = db.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01 + random.random() * 0.04)

    def _open_afresh(self, why: str, *, move: bool = False) -> None:
        """A new ledger with today marked "count lost" (so today's quotas count as spent)."""
        try:
            if move and (self.path.exists() or self.path.is_symlink()):
                moved = move_aside(self.path)
                why = f"{why}; moved to {moved.name}"
                for side in ("-wal", "-shm"):
                    with contextlib.suppress(OSError):
                        move_aside(self.path.with_name(self.path.name + side))
            self._db = self._connect()
            day = self._day()
            self._db.execute(
                "INSERT OR REPLACE INTO quota_lost (day, why) VALUES (?, ?)", (day, why)
            )
            self._lost_on = None
        except (sqlite3.Error, OSError) as exc:
            self._cannot_count(f"{why}; a new one cannot be created ({storage_fault(exc) or exc})")
            return
        log.warning("quota ledger rebuilt: %s; daily quotas count as spent today", why)

    def _cannot_count(self, why: str) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None
        self._unsaved = why
        log.warning(
            "quota counts cannot be saved: %s; services with a daily quota are not called", why
        )

    # -- reading -------------------------------------------------------------------------------
    def _day(self) -> str:
        return self._clock().astimezone(UTC).date().isoformat()

    @property
    def lost(self) -> str | None:
        """Why today's quota counts are unknown (every daily quota then counts as spent)."""
        if self._unsaved is not None:
            return f"quota counts cannot be saved: {self._unsaved}"
        if self._db is None:
            return None
        day = self._day()
        if self._lost_on is None or self._lost_on[0] != day:
            try:
                row = self._db.execute(
                    "SELECT why FROM quota_lost WHERE day = ?", (day,)
                ).fetchone()
            except sqlite3.Error as exc:
                row = (f"the quota ledger is unreadable ({exc})",)
            self._lost_on = (day, str(row[0]) if row else None)
        why = self._lost_on[1]
        return f"quota count lost today ({why}); taken as spent until UTC midnight" if why else None

    def used_today(self, service: str, upstream: str) -> int:
        if self._db is None:
            return 0
        try:
            row = self._db.execute(
                "SELECT used FROM quota_usage WHERE upstream=? AND service=? AND day=?",
                (upstream, service, self._day()),
            ).fetchone()
        except sqlite3.Error:
            return 0
        return int(row[0]) if row else 0

    def left_today(self, service: str, upstream: str, limit: int | None) -> int | None:
        if limit is None:
            return None
        if self.lost is not None:
            return 0
        return max(0, limit - self.used_today(service, upstream))

    # -- spending ------------------------------------------------------------------------------
    def try_reserve(self, service: str, upstream: str, limit: int | None) -> bool:
        """Count one call if the limit allows it (atomically across processes). A call that
        cannot be counted is refused when the service has a quota, allowed when it has none."""
        if limit is not None and self.lost is not None:
            return False
        db = self._db
        if db is None:
            return limit is None
        day = self._day()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT used FROM quota_usage WHERE upstream=? AND service=? AND day=?",
                    (upstream, service, day),
                ).fetchone()
                used = int(row[0]) if row else 0
                if limit is not None and used >= limit:
                    db.execute("ROLLBACK")
                    return False
                db.execute(
                    "INSERT INTO quota_usage (upstream, service, day, used) VALUES (?, ?, ?, 1) "
                    "ON CONFLICT (upstream, service, day) DO UPDATE SET used = used + 1",
                    (upstream, service, day),
                )
                db.execute("COMMIT")
                return True
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            if "locked" in str(exc):
                raise
            self._cannot_count(f"{self.FILE_NAME} refused a write ({storage_fault(exc) or exc})")
            return limit is None

    # -- holds of earlier versions -------------------------------------------------------------
    def take_legacy_holds(self) -> list[LegacyHold]:
        """The holds still in force in an earlier version's `service_holds` table, removing the
        table (the caller raises them as flags). Nothing when there is none or it is unreadable."""
        db = self._db
        if db is None:
            return []
        try:
            rows = db.execute(
                "SELECT upstream, service, reason, detail, until FROM service_holds"
            ).fetchall()
            db.execute("DROP TABLE service_holds")
        except sqlite3.Error:
            return []
        now, held = self._clock(), []
        for upstream, service, reason, detail, until in rows:
            try:
                when = datetime.fromisoformat(str(until))
            except ValueError:
                continue
            if when.tzinfo is not None and when > now:
                held.append(LegacyHold(str(upstream), str(service), str(reason), str(detail), when))
        return held

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


def _connect_readonly(path: Path) -> sqlite3.Connection | None:
    # Without a WAL file the database is complete on its own: `immutable` reads it without
    # creating -wal/-shm files. With one (a run in progress), a read-only WAL reader is needed.
    wal = path.with_name(path.name + "-wal").exists()
    mode = "mode=ro" if wal else "mode=ro&immutable=1"
    try:
        return sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=5.0)
    except sqlite3.Error:
        return None


def read_usage(state_dir: Path, day: date) -> dict[tuple[str, str], int] | None:
    """Calls counted on `day` per (upstream, service), read without creating or changing a file.

    An absent ledger reads as "nothing used"; one whose count for the day was lost, or that
    cannot be read, is None: every daily quota counts as spent (the real run checks again).
    """
    path = state_dir / QuotaLedger.FILE_NAME
    if not path.exists() and not path.is_symlink():
        return {} if state_dir.is_dir() or not state_dir.exists() else None
    if not path.is_file() or path.is_symlink():
        return None
    db = _connect_readonly(path)
    if db is None:
        return None
    try:
        rows = db.execute(
            "SELECT upstream, service, used FROM quota_usage WHERE day=?", (day.isoformat(),)
        ).fetchall()
        try:
            lost = db.execute("SELECT 1 FROM quota_lost WHERE day=?", (day.isoformat(),)).fetchone()
        except sqlite3.OperationalError:  # a ledger from before the table existed
            lost = None
    except sqlite3.Error:
        return None
    finally:
        db.close()
    if lost is not None:
        return None
    return {(str(u), str(s)): int(n) for u, s, n in rows}
