"""`state/coord.sqlite`: the machine-wide coordination state of one data root.

Why SQLite (not a file under `fcntl.flock`, not a library): every operation is a read-modify-write
of one or two rows ("book the next slot", "raise a flag unless one is up", "take a lease unless
it is held"), which `BEGIN IMMEDIATE` makes atomic across processes; a process killed mid-write
leaves neither a torn record nor a held lock; and flags and leases need keyed rows, which one
file per key under flock would spread over many files. The write lock is held for tens of
microseconds and never while anybody sleeps. No library offers a cross-process, serverless
"next free slot" (pyrate-limiter's SQLite bucket is a sliding log polled by sleep-and-retry).

Every call runs in one dedicated thread per database, so a writer waiting on SQLite's busy handler
never blocks the event loop, and the connection is only ever used from that thread. The state is
disposable: a damaged file is moved aside and rebuilt (at worst one early call or one duplicate
fetch); a path that cannot be a database at all is refused in one sentence.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pacing (
    upstream  TEXT NOT NULL,
    service   TEXT NOT NULL,
    last_slot REAL NOT NULL,
    PRIMARY KEY (upstream, service)
);
CREATE TABLE IF NOT EXISTS flags (
    upstream TEXT NOT NULL,
    service  TEXT NOT NULL,
    kind     TEXT NOT NULL,
    until    REAL NOT NULL,
    reason   TEXT NOT NULL,
    PRIMARY KEY (upstream, service, kind)
);
CREATE TABLE IF NOT EXISTS leases (
    key     TEXT PRIMARY KEY,
    token   TEXT NOT NULL,
    expires REAL NOT NULL,
    owner   TEXT NOT NULL DEFAULT ''
);
"""


class StateUnusable(Exception):
    """The coordination state cannot be opened (its path is not a usable file)."""


class StateDB:
    """One connection to `coord.sqlite`, used from one worker thread."""

    FILE_NAME = "coord.sqlite"

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / self.FILE_NAME
        self.rebuilt = False  # a damaged file was moved aside (for the report)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coord-db")
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._db = self._executor.submit(self._open).result()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    def _open(self) -> sqlite3.Connection:
        try:
            return _connect(self.path)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) or not self.path.is_file():
                raise StateUnusable(
                    f"{self.path} cannot be used as the coordination database ({exc}); "
                    "remove it or point the data root elsewhere."
                ) from None
        aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
        self.path.replace(aside)
        for suffix in ("-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        self.rebuilt = True
        return _connect(self.path)

    async def transact(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` inside one `BEGIN IMMEDIATE` transaction, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transact, work)

    def _transact(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
            db.execute("COMMIT")
            return result
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._executor.submit(self._db.close).result()
        self._executor.shutdown(wait=True)


def _connect(path: Path) -> sqlite3.Connection:
    """WAL mode and the tables. Switching to WAL needs an exclusive lock that SQLite may refuse at
    once ("database is locked", no busy handler) while another process opens the file, so the
    setup is retried for a while."""
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    deadline = time.monotonic() + 30.0
    while True:
        try:
            if str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(leases)")}
            if "owner" not in columns:  # a file from before leases named their process
                db.execute("ALTER TABLE leases ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
            return db
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                db.close()
                raise
            time.sleep(0.01 + random.random() * 0.04)
        except BaseException:
            db.close()
            raise
