"""Read-only scans of a cache root: rows, envelopes, statistics, strays — straight from SQLite.

The report, the optimizer's plan and the integrity check all start here. Nothing in this module
writes: databases are opened with `mode=ro` (no counter moves, no access time is touched, no
diskcache settings are rewritten) and nothing is ever unpickled: a row diskcache would unpickle
(a pickled key or value) is reported as unsafe from its raw bytes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diskcache.core import MODE_BINARY, MODE_RAW, MODE_TEXT

from cache.envelope import CorruptEntry, Envelope
from cache.store import (
    COUNTER_NAMES,
    DB_NAME,
    LAST_RUN_KEY,
    QUARANTINE_DIR,
    SQLITE_TIMEOUT_S,
    STAT_PREFIX,
    STATS_TABLE,
    is_namespace_name,
    parse_last_run,
    raw_row_bytes,
)

# A value file no row points to, younger than this, may belong to a write still in flight
# (diskcache writes the file before it commits the row): leave it alone.
ORPHAN_GRACE_S = 3600.0
# A namespace-named directory without a database, younger than this, is a namespace being
# created right now, not a stray.
YOUNG_DIR_GRACE_S = 300.0
DB_FILES = (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm")


@dataclass(frozen=True)
class Row:
    """One Cache row as stored: identity, times, and its stored size (never its decoded value)."""

    rowid: int
    key: str | None  # None when the key itself is pickled (raw = 0)
    store_time: float
    access_time: float
    tag: int | None
    mode: int
    filename: str | None
    stored_bytes: int  # db blob length, or the value file's size

    @property
    def label(self) -> str:
        return self.key if self.key is not None else f"<pickled key, rowid {self.rowid}>"

    @property
    def never_read(self) -> bool:
        """diskcache sets access_time = store_time on write and moves it on every `get` (LRU)."""
        return self.access_time == self.store_time


@dataclass(frozen=True)
class Checked:
    """A row and what its bytes decode to: an envelope, or why they do not."""

    row: Row
    envelope: Envelope | None
    problem: str | None


@dataclass
class NamespaceScan:
    """Everything read from one namespace, in one read-only pass."""

    service: str
    directory: Path
    checked: list[Checked] = field(default_factory=list)
    size_limit: int | None = None
    volume: int = 0  # diskcache's own measure: page_count * page_size + file-stored bytes
    db_bytes: int = 0  # page_count * page_size
    schema_bytes: int = 0  # the pages an empty database takes (one root page per b-tree)
    counters: dict[str, int] = field(default_factory=dict)
    last_run: dict[str, Any] | None = None
    disk_bytes: int = 0
    orphan_files: list[tuple[str, int]] = field(default_factory=list)


def connect_readonly(db: Path) -> sqlite3.Connection:
    uri = f"{db.resolve().as_uri()}?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=SQLITE_TIMEOUT_S, isolation_level=None)


def tree_bytes(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        with contextlib.suppress(OSError):
            return path.lstat().st_size
        return 0
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(base, name)).st_size
    return total


def _value_files(directory: Path) -> Iterator[Path]:
    """diskcache value files: `xx/yy/<hex>.val` under the namespace directory."""
    for sub in directory.iterdir():
        if sub.is_dir() and len(sub.name) == 2:
            yield from sub.glob("*/*.val")


def check_row(directory: Path, row: Row, value: Any) -> Checked:
    """Decode and verify one row's envelope from raw bytes; unsafe rows are never decoded."""
    if row.key is None:
        return Checked(row, None, "pickled key (written by something other than tradescout)")
    if row.mode not in (MODE_RAW, MODE_BINARY, MODE_TEXT):
        return Checked(row, None, "pickled value (written by something other than tradescout)")
    if row.filename and not (directory / row.filename).is_file():
        return Checked(row, None, "value file missing")
    if isinstance(value, int) and not isinstance(value, bool):
        return Checked(row, None, "not an envelope (a bare number)")
    data = raw_row_bytes(directory, row.mode, row.filename, value)
    try:
        env = Envelope.from_bytes(data)
    except CorruptEntry as exc:
        return Checked(row, None, str(exc))
    if env.key != row.key:
        return Checked(row, None, "envelope key does not match its cache key")
    if env.service != directory.name:
        return Checked(row, None, "envelope belongs to another namespace")
    return Checked(row, env, None)


def read_rows(
    con: sqlite3.Connection, directory: Path, *, decode: bool = True
) -> Iterator[Checked]:
    """Every entry row; with `decode`, each envelope is decoded and its hash verified.

    Without `decode` only the row's metadata is read (the optimizer needs no payloads).
    """
    value_column = "value" if decode else "length(value)"
    cursor = con.execute(
        "SELECT rowid, key, raw, store_time, access_time, tag, mode, filename, size, "
        f"{value_column} FROM Cache ORDER BY rowid"
    )
    for rowid, key, raw, store_time, access_time, tag, mode, filename, size, value in cursor:
        is_str_key = bool(raw) and isinstance(key, str)
        if is_str_key and key.startswith(STAT_PREFIX):
            continue
        if filename:
            stored = int(size or 0)
        elif decode:
            stored = _blob_length(value)
        else:
            stored = int(value or 0)
        row = Row(
            rowid=int(rowid),
            key=key if is_str_key else None,
            store_time=float(store_time or 0.0),
            access_time=float(access_time or 0.0),
            tag=int(tag) if isinstance(tag, (int, float)) else None,
            mode=int(mode or 0),
            filename=filename,
            stored_bytes=stored,
        )
        yield check_row(directory, row, value) if decode else Checked(row, None, None)


def _blob_length(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return 8  # an integer column


def _stats(con: sqlite3.Connection) -> dict[str, Any]:
    try:
        return dict(con.execute(f"SELECT name, value FROM {STATS_TABLE}").fetchall())
    except sqlite3.OperationalError:  # a namespace never opened by this version
        return {}


def _settings(con: sqlite3.Connection) -> dict[str, Any]:
    return dict(con.execute("SELECT key, value FROM Settings").fetchall())


def scan_namespace(
    directory: Path, *, decode: bool = True, now_wall: float | None = None
) -> NamespaceScan:
    """Read one namespace without changing it (`decode`: verify every envelope too)."""
    scan = NamespaceScan(service=directory.name, directory=directory)
    con = connect_readonly(directory / DB_NAME)
    try:
        settings = _settings(con)
        limit = settings.get("size_limit")
        scan.size_limit = int(limit) if isinstance(limit, (int, float)) else None
        ((page_count,),) = con.execute("PRAGMA page_count").fetchall()
        ((page_size,),) = con.execute("PRAGMA page_size").fetchall()
        scan.db_bytes = int(page_count) * int(page_size)
        scan.volume = scan.db_bytes + int(settings.get("size") or 0)
        ((roots,),) = con.execute("SELECT count(*) FROM sqlite_master WHERE rootpage > 0")
        scan.schema_bytes = (int(roots) + 1) * int(page_size)
        stats = _stats(con)
        scan.counters = {name: int(stats.get(name) or 0) for name in COUNTER_NAMES}
        scan.last_run = parse_last_run(stats.get(LAST_RUN_KEY))
        scan.checked = list(read_rows(con, directory, decode=decode))
        referenced = {c.row.filename for c in scan.checked if c.row.filename}
    finally:
        con.close()
    wall = time.time() if now_wall is None else now_wall
    for path in _value_files(directory):
        rel = path.relative_to(directory).as_posix()
        if rel in referenced:
            continue
        with contextlib.suppress(OSError):
            st = path.stat()
            if wall - st.st_mtime >= ORPHAN_GRACE_S:
                scan.orphan_files.append((rel, st.st_size))
    scan.disk_bytes = namespace_disk_bytes(directory)
    return scan


def namespace_disk_bytes(directory: Path) -> int:
    """Files under a namespace directory, except SQLite's `-shm` (a transient shared-memory
    index that any reader, this report's included, creates and the last writer removes)."""
    shm = directory / (DB_NAME + "-shm")
    total = tree_bytes(directory)
    with contextlib.suppress(OSError):
        total -= shm.lstat().st_size
    return total


@dataclass(frozen=True)
class Stray:
    """Something in the cache root that belongs to no namespace."""

    path: str  # relative to the cache root
    kind: str  # "file" | "dir"
    bytes: int
    why: str


def find_strays(root: Path, *, now_wall: float | None = None) -> list[Stray]:
    """Files and directories in the cache root that are neither a namespace nor our quarantine."""
    if not root.is_dir():
        return []
    wall = time.time() if now_wall is None else now_wall
    strays: list[Stray] = []
    for path in sorted(root.iterdir()):
        name = path.name
        if name == QUARANTINE_DIR and path.is_dir() and not path.is_symlink():
            continue
        if path.is_symlink():
            strays.append(Stray(name, "file", 0, "symbolic link"))
            continue
        if path.is_dir():
            has_db = (path / DB_NAME).is_file()
            if is_namespace_name(name) and has_db:
                continue
            if is_namespace_name(name):
                with contextlib.suppress(OSError):
                    if wall - path.stat().st_mtime < YOUNG_DIR_GRACE_S:
                        continue  # being created right now
                why = "namespace-named directory without a cache database"
            elif has_db:
                why = "cache database under a name that is not a namespace (legacy layout)"
            else:
                why = "directory that is not a namespace"
            strays.append(Stray(name, "dir", tree_bytes(path), why))
        else:
            strays.append(Stray(name, "file", tree_bytes(path), "file outside any namespace"))
    return strays


def read_size_limit(directory: Path) -> int | None:
    """The size limit the namespace was last opened with (diskcache keeps it in Settings)."""
    con = connect_readonly(directory / DB_NAME)
    try:
        value = _settings(con).get("size_limit")
    finally:
        con.close()
    return int(value) if isinstance(value, (int, float)) else None


def quarantined_files(root: Path, service: str) -> int:
    qdir = root / QUARANTINE_DIR / service
    return sum(1 for _ in qdir.glob("*.bin")) if qdir.is_dir() else 0


def namespace_dirs(root: Path) -> list[Path]:
    """Namespace directories (valid name, holding a `cache.db`), sorted."""
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and is_namespace_name(p.name)
        and (p / DB_NAME).is_file()
    )
