"""Read-only scans of a cache root: rows, envelopes, statistics, strays — straight from SQLite.

The report, the optimizer's plan and the integrity check all start here. Nothing in this module
writes: databases are opened with `mode=ro` (no counter moves, no access time is touched, no
diskcache settings are rewritten) and nothing is ever unpickled: a row diskcache would unpickle
(a pickled key or value) is reported as unsafe from its raw bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diskcache.core import MODE_BINARY, MODE_RAW, MODE_TEXT

from cache.backend import COUNTER_NAMES
from cache.disk.paths import DB_NAME, QUARANTINE_DIR, is_namespace_name, value_file
from cache.disk.store import SQLITE_TIMEOUT_S, STAT_PREFIX, STATS_TABLE, raw_row_bytes
from cache.envelope import LEGACY_PROBE_BYTES, Envelope, is_legacy
from cache.errors import CorruptEntry, LegacyEntry, storage_fault
from cache.namespace import LAST_RUN_KEY, as_counter, parse_last_run

# A value file no row points to, younger than this, may belong to a write still in flight
# (diskcache writes the file before it commits the row): leave it alone.
ORPHAN_GRACE_S = 3600.0
# A namespace-named directory without a database, younger than this, is a namespace being
# created right now, not a stray.
YOUNG_DIR_GRACE_S = 300.0


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
    legacy: bool = False  # an envelope of an older version (told from its first bytes)

    @property
    def label(self) -> str:
        return self.key if self.key is not None else f"<pickled key, rowid {self.rowid}>"

    @property
    def never_read(self) -> bool:
        """diskcache sets access_time = store_time on write and moves it on every `get` (LRU)."""
        return self.access_time == self.store_time


@dataclass(frozen=True)
class Checked:
    """A row and what its bytes decode to: an envelope, or why they do not (a legacy entry
    has neither: it is not damaged, only never served)."""

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

    @property
    def legacy(self) -> list[Row]:
        return [c.row for c in self.checked if c.row.legacy]


def _connect(db: Path) -> sqlite3.Connection:
    uri = f"{db.resolve().as_uri()}?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=SQLITE_TIMEOUT_S, isolation_level=None)
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except BaseException:
        con.close()
        raise
    return con


def connect_readonly(db: Path) -> sqlite3.Connection:
    """A read-only connection. A database a killed writer left needing WAL recovery can refuse
    a read-only reader ("attempt to write a readonly database"): one ordinary connection runs
    the recovery SQLite would run on the next open anyway (no row changes), then the read-only
    one is tried again. It is still refused when the file system itself is read-only."""
    if not db.is_file() or db.is_symlink():
        raise sqlite3.DatabaseError(f"{db.name} is not a regular file")
    try:
        return _connect(db)
    except sqlite3.OperationalError as exc:
        if storage_fault(exc) != "read-only":
            raise
    with contextlib.suppress(sqlite3.Error):
        recover = sqlite3.connect(db, timeout=SQLITE_TIMEOUT_S, isolation_level=None)
        try:
            recover.execute("SELECT count(*) FROM sqlite_master").fetchall()
        finally:
            recover.close()
    return _connect(db)


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
    """diskcache value files (`xx/yy/<hex>.val`) that really lie inside the namespace: a
    symlinked subdirectory or file is never followed out of it."""
    for sub in directory.iterdir():
        if sub.is_symlink() or not sub.is_dir() or len(sub.name) != 2:
            continue
        for path in sub.glob("*/*.val"):
            rel = path.relative_to(directory).as_posix()
            if not path.parent.is_symlink() and value_file(directory, rel) is not None:
                yield path


def _file_prefix(directory: Path, filename: str | None) -> bytes:
    path = value_file(directory, filename)
    if path is None:
        return b""
    try:
        with path.open("rb") as handle:
            return handle.read(LEGACY_PROBE_BYTES)
    except OSError:
        return b""


def check_row(directory: Path, row: Row, value: Any) -> Checked:
    """Decode and verify one row's envelope from raw bytes; unsafe rows are never decoded,
    and a value file is read only when it lies inside the namespace."""
    if row.key is None:
        return Checked(row, None, "pickled key (written by something other than tradescout)")
    if row.mode not in (MODE_RAW, MODE_BINARY, MODE_TEXT):
        return Checked(row, None, "pickled value (written by something other than tradescout)")
    if row.filename:
        path = value_file(directory, row.filename)
        if path is None:
            return Checked(row, None, "value file path outside its namespace")
        if not path.is_file():
            return Checked(row, None, "value file missing")
    if isinstance(value, int) and not isinstance(value, bool):
        return Checked(row, None, "not an envelope (a bare number)")
    data = raw_row_bytes(directory, row.mode, row.filename, value)
    try:
        env = Envelope.from_bytes(data)
    except LegacyEntry:
        return Checked(dataclasses.replace(row, legacy=True), None, None)
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

    Without `decode` only the row's metadata and the first bytes of its value are read (the
    optimizer needs no payloads, only whether an entry is of an older version).
    """
    value_column = "value" if decode else f"length(value), substr(value, 1, {LEGACY_PROBE_BYTES})"
    cursor = con.execute(
        "SELECT rowid, key, raw, store_time, access_time, tag, mode, filename, size, "
        f"{value_column} FROM Cache ORDER BY rowid"
    )
    for rowid, key, raw, store_time, access_time, tag, mode, filename, size, *rest in cursor:
        is_str_key = bool(raw) and isinstance(key, str)
        if is_str_key and key.startswith(STAT_PREFIX):
            continue
        value = rest[0]
        if filename:
            stored = as_counter(size)
        elif decode:
            stored = _blob_length(value)
        else:
            stored = as_counter(value)
        row = Row(
            rowid=int(rowid),
            key=key if is_str_key else None,
            store_time=_as_float(store_time),
            access_time=_as_float(access_time),
            tag=int(tag) if isinstance(tag, (int, float)) and abs(tag) < 2**62 else None,
            mode=as_counter(mode),
            filename=filename if isinstance(filename, str) else None,
            stored_bytes=stored,
        )
        if decode:
            yield check_row(directory, row, value)
            continue
        prefix = _file_prefix(directory, row.filename) if row.filename else rest[1]
        legacy = isinstance(prefix, bytes) and is_legacy(prefix)
        yield Checked(dataclasses.replace(row, legacy=legacy) if legacy else row, None, None)


def _as_float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


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


def _tables(con: sqlite3.Connection) -> set[str]:
    return {str(n) for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _settings(con: sqlite3.Connection) -> dict[str, Any]:
    if "Settings" not in _tables(con):  # creation cut short (a full disk): nothing stored yet
        return {}
    return dict(con.execute("SELECT key, value FROM Settings").fetchall())


def scan_namespace(
    directory: Path, *, decode: bool = True, now_wall: float | None = None
) -> NamespaceScan:
    """Read one namespace without changing it (`decode`: verify every envelope too)."""
    scan = NamespaceScan(service=directory.name, directory=directory)
    con = connect_readonly(directory / DB_NAME)
    try:
        settings = _settings(con)
        scan.size_limit = _size_limit(settings)
        ((page_count,),) = con.execute("PRAGMA page_count").fetchall()
        ((page_size,),) = con.execute("PRAGMA page_size").fetchall()
        scan.db_bytes = int(page_count) * int(page_size)
        scan.volume = scan.db_bytes + as_counter(settings.get("size"))
        ((roots,),) = con.execute("SELECT count(*) FROM sqlite_master WHERE rootpage > 0")
        scan.schema_bytes = (int(roots) + 1) * int(page_size)
        stats = _stats(con)
        scan.counters = {name: as_counter(stats.get(name)) for name in COUNTER_NAMES}
        scan.last_run = parse_last_run(stats.get(LAST_RUN_KEY))
        has_rows = "Cache" in _tables(con)
        scan.checked = list(read_rows(con, directory, decode=decode)) if has_rows else []
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
        return _size_limit(_settings(con))
    finally:
        con.close()


def _size_limit(settings: dict[str, Any]) -> int | None:
    limit = as_counter(settings.get("size_limit"))
    return limit if limit > 0 else None


def quarantined_files(root: Path, service: str) -> int:
    """Entries kept in `_quarantine/{service}` (a quarantine that is a symlink is not looked
    into: it may point anywhere)."""
    top = root / QUARANTINE_DIR
    qdir = top / service
    if top.is_symlink() or qdir.is_symlink() or not qdir.is_dir():
        return 0
    return sum(1 for _ in qdir.glob("*.bin"))


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
