"""Daily request quotas, persisted in `data/state/quotas.sqlite`.

A quota must survive restarts (a cron refresh and an interactive run share Alpha Vantage's 25
calls a day) and two processes must never both spend the last call: every reservation is one
`BEGIN IMMEDIATE` transaction (SQLite serialises writers across processes). Days are UTC dates of
the injected clock, so the count resets at UTC midnight. Live and sandbox calls are counted in
separate namespaces (`upstream`), so tests against the simulator never spend real quota.
Every call is counted, also for services without a quota, so the report can show usage.

The same file remembers *holds*: a refusal that tells tradescout to leave a service alone until a
moment (Yahoo's bot block and SEC's rate block for their cool-down, a daily limit the service
declared spent until the next UTC midnight), so the next run — or a refresh beside a discover —
does not knock again.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quota_usage (
    upstream TEXT NOT NULL,
    service  TEXT NOT NULL,
    day      TEXT NOT NULL,
    used     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (upstream, service, day)
);
CREATE TABLE IF NOT EXISTS service_holds (
    upstream TEXT NOT NULL,
    service  TEXT NOT NULL,
    reason   TEXT NOT NULL,
    detail   TEXT NOT NULL,
    until    TEXT NOT NULL,
    PRIMARY KEY (upstream, service)
)
"""


@dataclass(frozen=True)
class ServiceHold:
    """A refusal remembered until `until` (aware UTC)."""

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
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / self.FILE_NAME
        self._clock = clock
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._setup()

    def _setup(self) -> None:
        """WAL mode and the table. Switching to WAL needs an exclusive lock and SQLite may answer
        "database is locked" at once (no busy handler) when another process opens the file at
        the same moment, so the setup is retried for a while."""
        deadline = time.monotonic() + 30.0
        while True:
            try:
                mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01 + random.random() * 0.04)

    def _day(self) -> str:
        return self._clock().astimezone(UTC).date().isoformat()

    def used_today(self, service: str, upstream: str) -> int:
        row = self._db.execute(
            "SELECT used FROM quota_usage WHERE upstream=? AND service=? AND day=?",
            (upstream, service, self._day()),
        ).fetchone()
        return int(row[0]) if row else 0

    def left_today(self, service: str, upstream: str, limit: int | None) -> int | None:
        if limit is None:
            return None
        return max(0, limit - self.used_today(service, upstream))

    def try_reserve(self, service: str, upstream: str, limit: int | None) -> bool:
        """Count one call if the limit allows it (atomically across processes)."""
        day = self._day()
        db = self._db
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

    def hold(self, service: str, upstream: str, hold: ServiceHold) -> None:
        """Remember a refusal; a longer hold already recorded is kept."""
        current = self.held(service, upstream)
        if current is not None and current.until >= hold.until:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO service_holds (upstream, service, reason, detail, until) "
            "VALUES (?, ?, ?, ?, ?)",
            (upstream, service, hold.reason, hold.detail[:300], hold.until.isoformat()),
        )

    def held(self, service: str, upstream: str) -> ServiceHold | None:
        """The hold in force now, if any (an expired one reads as none)."""
        row = self._db.execute(
            "SELECT reason, detail, until FROM service_holds WHERE upstream=? AND service=?",
            (upstream, service),
        ).fetchone()
        if row is None:
            return None
        try:
            until = datetime.fromisoformat(str(row[2]))
        except ValueError:
            return None
        if until.tzinfo is None or until <= self._clock():
            return None
        return ServiceHold(str(row[0]), str(row[1]), until)

    def close(self) -> None:
        self._db.close()


def read_usage(state_dir: Path, day: date) -> dict[tuple[str, str], int]:
    """Calls counted today per (upstream, service), read without creating or changing a file
    (an absent or unreadable ledger reads as "nothing used": the real run checks again)."""
    path = state_dir / QuotaLedger.FILE_NAME
    if not path.is_file():
        return {}
    # Without a WAL file the database is complete on its own: `immutable` reads it without
    # creating -wal/-shm files. With one (a run in progress), a read-only WAL reader is needed.
    wal = path.with_name(path.name + "-wal").exists()
    mode = "mode=ro" if wal else "mode=ro&immutable=1"
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=5.0)
    except sqlite3.Error:
        return {}
    try:
        rows = db.execute(
            "SELECT upstream, service, used FROM quota_usage WHERE day=?", (day.isoformat(),)
        ).fetchall()
    except sqlite3.Error:
        return {}
    finally:
        db.close()
    return {(str(u), str(s)): int(n) for u, s, n in rows}
