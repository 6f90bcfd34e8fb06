"""The run ledger: one SQLite row per `discover`/`refresh` run and one per service used.

Lives at `{state_dir}/ledger.sqlite`. WAL mode and a busy timeout let a nightly refresh and an
interactive discover write at the same time; every write is one `BEGIN IMMEDIATE` transaction so
two writers queue instead of deadlocking. Rows older than 90 days are pruned on every write, so
the file stays small without a separate job. `PRAGMA user_version` carries the schema version so
a later release can migrate in place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from cache.atomic import move_aside, own_directory
from cache.errors import is_damaged_database
from discovery.upstream import LABELS
from services.recordclass import record

log = logging.getLogger("tradescout")

SCHEMA_VERSION: Final = 1
RETENTION_DAYS: Final = 90
BUSY_TIMEOUT_MS: Final = 30_000
LEDGER_FILENAME: Final = "ledger.sqlite"

KINDS: Final = ("discover", "refresh")
# The per-service figures of the report's `service_usage` that get their own column.
SERVICE_INT_FIELDS: Final = (
    "planned",
    "cache_hits",
    "network_requests",
    "retries",
    "rate_limited",
    "errors",
    "quota_used_today",
)
SERVICE_FIELDS: Final = (*SERVICE_INT_FIELDS, "breaker_state")

_SERVICE_COLUMNS: Final = ", ".join(SERVICE_FIELDS)
_INSERT_SERVICE: Final = (
    f"INSERT INTO run_services (run_id, service, {_SERVICE_COLUMNS}, extra) "
    f"VALUES ({', '.join('?' * (len(SERVICE_FIELDS) + 3))})"
)

ServiceFigures = dict[str, int | float | str | None]
Clock = Callable[[], datetime]

_MIGRATIONS: Final[dict[int, str]] = {
    1: """
    CREATE TABLE runs (
        run_id           TEXT PRIMARY KEY,
        kind             TEXT NOT NULL,
        portfolio        TEXT,
        started_at       TEXT NOT NULL,  -- ISO 8601 with the run's own UTC offset
        started_ts       REAL NOT NULL,  -- POSIX seconds: ordering, windows, retention
        duration_ms      INTEGER NOT NULL,
        network_requests INTEGER NOT NULL,
        cache_hits       INTEGER NOT NULL,
        gaps             INTEGER NOT NULL,
        peak_rss_mb      REAL NOT NULL,
        exit_code        INTEGER NOT NULL,
        upstream         TEXT NOT NULL
    );
    CREATE INDEX runs_started_ts ON runs (started_ts);
    CREATE TABLE run_services (
        run_id           TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        service          TEXT NOT NULL,
        planned          INTEGER,
        cache_hits       INTEGER,
        network_requests INTEGER,
        retries          INTEGER,
        rate_limited     INTEGER,
        errors           INTEGER,
        breaker_state    TEXT,
        quota_used_today INTEGER,
        extra            TEXT,           -- JSON of any other figures, or NULL
        PRIMARY KEY (run_id, service)
    );
    """,
}


class _Damaged(Exception):
    """The ledger file is not a usable database (moved aside and rebuilt)."""


class LedgerError(Exception):
    """The ledger file cannot be used (corrupt, newer schema, unwritable).

    Callers should warn and carry on: a run's report matters more than its ledger row.
    """


def utcnow() -> datetime:
    return datetime.now(UTC)


@record
class RunRecord:
    """One run as the ledger keeps it. `started_at` must be timezone-aware."""

    run_id: str
    kind: str
    portfolio: str | None
    started_at: datetime
    duration_ms: int
    network_requests: int
    cache_hits: int
    gaps: int
    peak_rss_mb: float
    exit_code: int
    upstream: str
    per_service: dict[str, ServiceFigures] = field(default_factory=dict)

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.upstream not in LABELS:
            raise ValueError(f"upstream must be one of {LABELS}, not {self.upstream!r}")
        if self.started_at.tzinfo is None or self.started_at.utcoffset() is None:
            raise ValueError("started_at must be timezone-aware")
        if not self.run_id:
            raise ValueError("run_id must not be empty")


def hit_ratio(cache_hits: int, network_requests: int) -> float | None:
    """Share of lookups answered by the cache; None when there were none."""
    total = cache_hits + network_requests
    return round(cache_hits / total, 4) if total else None


def _service_row(run_id: str, service: str, figures: ServiceFigures) -> tuple[Any, ...]:
    def as_int(name: str) -> int | None:
        value = figures.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"per_service[{service!r}][{name!r}] must be a number or None")
        return int(value)

    breaker = figures.get("breaker_state")
    extra = {k: v for k, v in figures.items() if k not in SERVICE_FIELDS}
    # Same order as `_INSERT_SERVICE`: SERVICE_INT_FIELDS, then breaker_state, then extra.
    return (
        run_id,
        service,
        *(as_int(name) for name in SERVICE_INT_FIELDS),
        None if breaker is None else str(breaker),
        json.dumps(extra, sort_keys=True) if extra else None,
    )


class Ledger:
    """The run ledger at `path`. Use as a context manager (`with Ledger(p) as ledger:`)."""

    def __init__(self, path: Path, *, clock: Clock = utcnow) -> None:
        self.path = path
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self.rebuilt: str | None = None  # why the ledger was started afresh, if it was

    @classmethod
    def in_state_dir(cls, state_dir: Path, *, clock: Clock = utcnow) -> Ledger:
        return cls(state_dir / LEDGER_FILENAME, clock=clock)

    # -- connection ---------------------------------------------------------------------------

    def open(self) -> Ledger:
        """Open (creating or migrating) the ledger. A damaged one — garbage, truncated, a
        directory — is moved aside (`ledger.sqlite.damaged-…`) and started afresh: the run
        history is a convenience, never a reason for a run to fail."""
        if self._conn is not None:
            return self
        try:
            self._open_once()
        except _Damaged as exc:
            try:
                moved = move_aside(self.path)
                for side in ("-wal", "-shm"):
                    with contextlib.suppress(OSError):
                        move_aside(self.path.with_name(self.path.name + side))
            except OSError as move_exc:
                raise LedgerError(
                    f"{self.path}: the run ledger is unusable ({exc}) and cannot be moved aside "
                    f"({move_exc})."
                ) from None
            self.rebuilt = f"the run ledger was unusable ({exc}); moved to {moved.name}"
            log.warning("%s", self.rebuilt)
            try:
                self._open_once()
            except _Damaged as again:
                raise LedgerError(f"{self.path}: the run ledger is unusable ({again}).") from None
        return self

    def _open_once(self) -> None:
        try:
            own_directory(self.path.parent)
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot open the run ledger ({exc}).") from None
        if self.path.is_dir() or self.path.is_symlink():
            raise _Damaged("not a regular file")
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"{self.path}: cannot open the run ledger ({exc}).") from None
        try:
            self._setup(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            self._conn = None
            if is_damaged_database(exc):
                raise _Damaged(str(exc)) from None
            raise LedgerError(f"{self.path}: the run ledger is unusable ({exc}).") from None
        except LedgerError:
            conn.close()
            self._conn = None
            raise

    def _setup(self, conn: sqlite3.Connection) -> None:
        """Pragmas, migration, one read. Switching to WAL takes an exclusive lock and SQLite may
        answer "database is locked" at once (no busy handler) while another process opens the
        same file, so the setup is retried for as long as the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                self._conn = conn
                self._migrate()
                conn.execute("SELECT count(*) FROM runs").fetchone()  # reads a page: finds damage
                return
            except sqlite3.OperationalError as exc:
                self._conn = None
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01 + random.random() * 0.04)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Ledger:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.open()
        assert self._conn is not None
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: take the write lock up front so writers queue cleanly."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _migrate(self) -> None:
        db = self._db
        if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        with self._write():
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"{self.path}: the run ledger has schema version {version}, newer than this "
                    f"tradescout understands ({SCHEMA_VERSION}); upgrade tradescout."
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {target}")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- writes -------------------------------------------------------------------------------

    def record_run(self, row: RunRecord) -> None:
        """Insert (or replace, same run_id) a run and its per-service rows; then prune."""
        row.validate()
        service_rows = [_service_row(row.run_id, s, f) for s, f in sorted(row.per_service.items())]
        try:
            with self._write() as db:
                db.execute("DELETE FROM run_services WHERE run_id = ?", (row.run_id,))
                db.execute(
                    "INSERT OR REPLACE INTO runs (run_id, kind, portfolio, started_at, started_ts, "
                    "duration_ms, network_requests, cache_hits, gaps, peak_rss_mb, exit_code, "
                    "upstream) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.run_id,
                        row.kind,
                        row.portfolio,
                        row.started_at.isoformat(),
                        row.started_at.timestamp(),
                        int(row.duration_ms),
                        int(row.network_requests),
                        int(row.cache_hits),
                        int(row.gaps),
                        float(row.peak_rss_mb),
                        int(row.exit_code),
                        row.upstream,
                    ),
                )
                db.executemany(_INSERT_SERVICE, service_rows)
                self._prune(db, RETENTION_DAYS)
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot record the run ({exc}).") from None

    def prune(self, older_than_days: int = RETENTION_DAYS) -> int:
        """Delete runs that started more than `older_than_days` ago; returns how many."""
        with self._write() as db:
            return self._prune(db, older_than_days)

    def _prune(self, db: sqlite3.Connection, older_than_days: int) -> int:
        cutoff = (self._clock() - timedelta(days=older_than_days)).timestamp()
        db.execute(
            "DELETE FROM run_services WHERE run_id IN "
            "(SELECT run_id FROM runs WHERE started_ts < ?)",
            (cutoff,),
        )
        return db.execute("DELETE FROM runs WHERE started_ts < ?", (cutoff,)).rowcount

    # -- reads --------------------------------------------------------------------------------

    def recent_runs(self, limit: int = 20, *, kind: str | None = None) -> list[RunRecord]:
        """The latest runs, newest first, with their per-service figures."""
        db = self._db
        where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
        rows = db.execute(
            "SELECT run_id, kind, portfolio, started_at, started_ts, duration_ms, "
            "network_requests, cache_hits, gaps, peak_rss_mb, exit_code, upstream "
            f"FROM runs {where} ORDER BY started_ts DESC, run_id LIMIT ?",
            (*params, max(0, limit)),
        ).fetchall()
        records = []
        for r in rows:
            per_service: dict[str, ServiceFigures] = {}
            for s in db.execute(
                f"SELECT service, {_SERVICE_COLUMNS}, extra FROM run_services "
                "WHERE run_id = ? ORDER BY service",
                (r[0],),
            ):
                figures: ServiceFigures = dict(zip(SERVICE_FIELDS, s[1:-1], strict=True))
                if s[-1]:
                    figures.update(json.loads(s[-1]))
                per_service[s[0]] = figures
            records.append(
                RunRecord(
                    run_id=r[0],
                    kind=r[1],
                    portfolio=r[2],
                    started_at=datetime.fromisoformat(r[3]),
                    duration_ms=r[5],
                    network_requests=r[6],
                    cache_hits=r[7],
                    gaps=r[8],
                    peak_rss_mb=r[9],
                    exit_code=r[10],
                    upstream=r[11],
                    per_service=per_service,
                )
            )
        return records

    def hit_ratio_trend(self, days: int = 30, *, kind: str | None = None) -> list[dict[str, Any]]:
        """Per calendar day (in each run's own offset), oldest first, over the last `days`.

        Each entry: day (YYYY-MM-DD), runs, cache_hits, network_requests, hit_ratio (cache hits
        over cache hits + network requests; None on a day with neither). Days without runs are
        absent. Pass `kind="discover"` to leave out refresh runs, which fetch by design.
        """
        cutoff = (self._clock() - timedelta(days=days)).timestamp()
        sql = (
            "SELECT substr(started_at, 1, 10) AS day, COUNT(*), SUM(cache_hits), "
            "SUM(network_requests) FROM runs WHERE started_ts >= ?"
        )
        params: list[Any] = [cutoff]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        sql += " GROUP BY day ORDER BY day"
        return [
            {
                "day": day,
                "runs": int(runs),
                "cache_hits": int(hits),
                "network_requests": int(net),
                "hit_ratio": hit_ratio(int(hits), int(net)),
            }
            for day, runs, hits, net in self._db.execute(sql, params)
        ]

    def service_totals(self, days: int = 30) -> dict[str, dict[str, int]]:
        """Per service, the summed integer figures over the last `days` (for `cache report`)."""
        cutoff = (self._clock() - timedelta(days=days)).timestamp()
        cols = ", ".join(f"COALESCE(SUM(s.{c}), 0)" for c in SERVICE_INT_FIELDS[:-1])
        rows = self._db.execute(
            f"SELECT s.service, COUNT(*), {cols} FROM run_services s "
            "JOIN runs r ON r.run_id = s.run_id WHERE r.started_ts >= ? "
            "GROUP BY s.service ORDER BY s.service",
            (cutoff,),
        )
        return {
            row[0]: {"runs": int(row[1])}
            | {c: int(v) for c, v in zip(SERVICE_INT_FIELDS[:-1], row[2:], strict=True)}
            for row in rows
        }
