"""The diskcache backend: one diskcache directory per service under `data/cache/{service}/`.

Reads answer fresh / stale / miss (cache/namespace.py). Stale entries stay until `cache
optimize` removes them so a run can serve them when the service is down (stale-if-error).
Counters live in their own table (`TradescoutStats`) inside the namespace's `cache.db`, not as
cache rows: least-recently-used culling only ever removes entries, never the statistics.

`SafeDisk` is the one seam into diskcache: str keys and bytes values only, nothing is ever
unpickled, and a value file is opened or removed only inside its namespace (cache/disk/paths.py).

Two processes may share a namespace: diskcache is SQLite in WAL mode, every write is one
`BEGIN IMMEDIATE` transaction with a 60 s busy timeout, and opening retries while another
process holds the write lock (diskcache opens its schema with a zero timeout).

A namespace that cannot be used is never a crash. A damaged one (the database corrupt,
truncated, garbage or a directory; the namespace path a file or a symlink) is moved aside whole
and started afresh — at open or the moment damage shows mid-run — and `rebuilt` says so; its
entries are refetched. One the file system refuses to write (full, read-only) answers misses
and raises `CacheWriteFailed` on writes, so the run goes on without caching.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW, MODE_TEXT

from cache.backend import DEFAULT_SIZE_LIMIT, CacheRead, Clock, NamespaceStats, ReadState
from cache.disk.paths import DB_NAME, check_namespace, is_namespace_name, value_file
from cache.envelope import Envelope, expiry_tag, tag_head, utcnow
from cache.errors import (
    CacheWriteFailed,
    UnsafeCacheEntry,
    is_damaged_database,
    storage_fault,
)
from cache.namespace import (
    LAST_RUN_KEY,
    RUN_HISTORY_KEY,
    EnvelopeNamespace,
    append_history,
    parse_run_history,
)

log = logging.getLogger("tradescout.cache")
T = TypeVar("T")

STAT_PREFIX = "__tradescout_stat__:"  # legacy: counters once were cache rows; still skipped
STATS_TABLE = "TradescoutStats"
SQLITE_TIMEOUT_S = 60.0

_CREATE_STATS = f"CREATE TABLE IF NOT EXISTS {STATS_TABLE} (name TEXT PRIMARY KEY, value)"
ADD_STAT_SQL = (
    f"INSERT INTO {STATS_TABLE}(name, value) VALUES (?, ?) "
    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"
)
_SET_STAT = f"INSERT OR REPLACE INTO {STATS_TABLE}(name, value) VALUES (?, ?)"
_SAFE_MODES = (MODE_RAW, MODE_BINARY, MODE_TEXT)


class SafeDisk(diskcache.Disk):
    """A diskcache Disk that only stores str keys and bytes values, refuses to unpickle, and
    never opens or removes a value file outside its namespace."""

    def __init__(self, directory: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(directory, *args, **kwargs)
        self.written_file: str | None = None  # the value file of the write in progress

    def put(self, key: Any) -> tuple[Any, bool]:
        if not isinstance(key, str):
            raise TypeError("cache keys are str")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise UnsafeCacheEntry("pickled key refused")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        # bytes for envelopes, int for the atomic counters (`incr`); nothing that would pickle.
        if isinstance(value, bool) or not isinstance(value, (bytes, int)) or read:
            raise TypeError("cache values are bytes or int")
        size, mode, filename, db_value = super().store(value, read, key=key)
        self.written_file = filename
        return size, mode, filename, db_value

    def filename(
        self, key: Any = diskcache.core.UNKNOWN, value: Any = diskcache.core.UNKNOWN
    ) -> Any:
        """A new value file's name; never one whose directories lead out of the namespace (a
        planted symlink `xx/` is passed over, not written through)."""
        for _ in range(64):
            name, full_path = super().filename(key, value)
            if value_file(Path(self._directory), name) is not None:
                return name, full_path
        raise OSError(errno.EACCES, "no value file path inside the namespace")

    def _write(self, full_path: str, iterator: Any, mode: str, encoding: str | None = None) -> Any:
        """diskcache's file write, minus the partial file a full disk would leave behind."""
        try:
            return super()._write(full_path, iterator, mode, encoding)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(full_path)
            raise

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
        if mode not in _SAFE_MODES:  # MODE_PICKLE above all
            raise UnsafeCacheEntry("pickled value refused")
        if mode != MODE_RAW and value_file(Path(self._directory), filename) is None:
            raise UnsafeCacheEntry("value file path outside its namespace")
        return super().fetch(mode, filename, value, read)

    def remove(self, file_path: Any) -> None:
        if value_file(Path(self._directory), file_path) is not None:
            super().remove(file_path)


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, diskcache.Timeout) or (
        isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
    )


def _begin_error(cache: diskcache.Cache) -> sqlite3.Error | None:
    """Why `BEGIN IMMEDIATE` fails right now, unless only because another writer holds the lock.

    diskcache turns every failure of its `BEGIN IMMEDIATE` into `Timeout` (and with `retry`
    spins on it forever): a read-only or unopenable database must surface as itself instead.
    """
    try:
        cache._sql("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        return None if _is_lock_error(exc) else exc
    with contextlib.suppress(sqlite3.Error):
        cache._sql("ROLLBACK")
    return None


def retry_locked(cache: diskcache.Cache, fn: Callable[[], T]) -> T:
    """Run `fn` (which uses diskcache without `retry`) while another process holds the write
    lock, for up to `SQLITE_TIMEOUT_S`; any other failure is raised at once."""
    deadline = time.monotonic() + SQLITE_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            return fn()
        except diskcache.Timeout:
            real = _begin_error(cache)
            if real is not None:
                raise real from None
            if time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def open_diskcache(directory: Path, size_limit: int = DEFAULT_SIZE_LIMIT) -> diskcache.Cache:
    """Open one namespace with the settings every tradescout process uses.

    diskcache runs its schema statements with a zero busy timeout, so opening while another
    process is inside a write transaction can fail with "database is locked": retry for up to
    `SQLITE_TIMEOUT_S`, like every other statement.
    """
    deadline = time.monotonic() + SQLITE_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            cache = diskcache.Cache(
                str(directory),
                timeout=SQLITE_TIMEOUT_S,
                disk=SafeDisk,
                size_limit=size_limit,
                eviction_policy="least-recently-used",
                tag_index=True,
                disk_min_file_size=1 << 20,
            )
        except (sqlite3.OperationalError, diskcache.Timeout) as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
            continue
        try:
            retry_locked(cache, lambda: _create_stats(cache))  # noqa: B023 - called right here
        except BaseException:
            cache.close()
            raise
        return cache


def _create_stats(cache: diskcache.Cache) -> None:
    with cache.transact():
        cache._sql(_CREATE_STATS)


def raw_row_bytes(directory: Path, mode: int, filename: str | None, value: Any) -> bytes:
    """A row's stored bytes exactly as on disk (db blob or value file), without decoding; a
    value file outside the namespace is never read (empty bytes)."""
    if filename:
        path = value_file(directory, filename)
        if path is None:
            return b""
        with contextlib.suppress(OSError):
            return path.read_bytes()
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return b"" if value is None else str(value).encode()


def namespace_damage(directory: Path) -> str | None:
    """What is wrong with a namespace path before SQLite is even asked (None: nothing seen)."""
    if directory.is_symlink():
        return "the namespace path is a symbolic link"
    if directory.exists() and not directory.is_dir():
        return "the namespace path is not a directory"
    db = directory / DB_NAME
    if db.is_symlink():
        return "the cache database is a symbolic link"
    if db.exists() and not db.is_file():
        return "the cache database is not a regular file"
    return None


def _describe(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__


class DiskNamespace(EnvelopeNamespace):
    """One service's cache namespace in a diskcache directory."""

    def __init__(
        self,
        directory: Path,
        service: str,
        *,
        size_limit_bytes: int = DEFAULT_SIZE_LIMIT,
        clock: Clock = utcnow,
    ) -> None:
        super().__init__(check_namespace(service), clock=clock)
        self.directory = directory
        self._root = directory.parent
        self._size_limit = size_limit_bytes
        self._touched: dict[int, tuple[str, float]] = {}
        self._cache: diskcache.Cache | None = None
        self._note: str | None = None
        self._rebuilds = 0
        self._open()

    # -- opening, rebuilding ----------------------------------------------------------------------
    def _open(self) -> None:
        damage = namespace_damage(self.directory)
        if damage is not None:
            self._rebuild(damage)
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._cache = open_diskcache(self.directory, self._size_limit)
        except (sqlite3.Error, OSError, diskcache.Timeout) as exc:
            if is_damaged_database(exc):
                self._rebuild(f"unreadable cache database ({_describe(exc)})")
            else:
                self._unusable(f"cannot be opened ({storage_fault(exc) or _describe(exc)})")

    def _rebuild(self, why: str) -> None:
        """Move the damaged namespace aside and start it afresh (once per run)."""
        self._close_cache()
        self._touched.clear()
        self._rebuilds += 1
        if self._rebuilds > 1:
            self._unusable(f"{why}, again after a rebuild")
            return
        from cache.disk.quarantine import quarantine_namespace  # damage only

        try:
            moved = quarantine_namespace(self._root, self.service, why, self._clock())
        except OSError as exc:
            self._unusable(f"{why}; it cannot be moved aside ({storage_fault(exc) or exc})")
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._cache = open_diskcache(self.directory, self._size_limit)
        except (sqlite3.Error, OSError, diskcache.Timeout) as exc:
            self._unusable(f"{why}; a new one cannot be created ({storage_fault(exc) or exc})")
            return
        where = f", moved to {moved.path}" if moved.path else ""
        self._note = f"rebuilt: {why}{where}; its entries are fetched again"
        log.warning("cache %s %s", self.service, self._note)

    def _unusable(self, why: str) -> None:
        self._close_cache()
        self._note = f"not used this run: {why}"
        log.warning("cache %s %s", self.service, self._note)

    @property
    def rebuilt(self) -> str | None:
        return self._note

    def _close_cache(self) -> None:
        cache, self._cache = self._cache, None
        if cache is not None:
            with contextlib.suppress(Exception):
                cache.close()

    def _guarded(self, fn: Callable[[diskcache.Cache], T], *, write: bool, default: T) -> T:
        """Run one storage operation; damage rebuilds the namespace (then a write is tried
        once more), a refused write is `CacheWriteFailed`, a failed read is a miss."""
        for attempt in (1, 2):
            cache = self._cache
            if cache is None:
                break
            try:
                return fn(cache)
            except (sqlite3.Error, OSError, diskcache.Timeout) as exc:
                if _is_lock_error(exc):
                    raise
                if is_damaged_database(exc) and attempt == 1:
                    self._rebuild(f"damaged cache database ({_describe(exc)})")
                    if write:
                        continue
                    return default
                if write:
                    raise CacheWriteFailed(
                        self.service, storage_fault(exc) or _describe(exc)
                    ) from exc
                return default
        if write:
            raise CacheWriteFailed(self.service, self._note or "the namespace is not usable")
        return default

    def head(self, key: str) -> CacheRead:
        """From the row's tag alone when it names the entry's status (rows written since it
        does), else from the header: planning reads no entry's bytes."""

        def tag_of(cache: diskcache.Cache) -> list[tuple[Any]]:
            return cache._sql("SELECT tag FROM Cache WHERE key = ? AND raw = 1", (key,)).fetchall()

        rows = self._guarded(tag_of, write=False, default=None)
        if not rows:
            return super().head(key) if rows is None else CacheRead(ReadState.MISS)
        known = tag_head(rows[0][0], self._clock())
        if known is None:
            return super().head(key)
        fresh, status = known
        return CacheRead(ReadState.FRESH if fresh else ReadState.STALE, status_only=status)

    # -- the storage hooks ------------------------------------------------------------------------
    def _read(self, key: str, *, touch: bool) -> bytes | None:
        """The row read without a write lock and without moving its access time.

        diskcache's own `get` under least-recently-used takes the write lock on every read to
        move `access_time`; here counted reads remember the row and move its access time in the
        next counter flush or write, so LRU order is kept to within a flush and readers never
        queue behind writers.
        """

        def read(cache: diskcache.Cache) -> tuple[int, int, Any, Any] | None:
            rows = cache._sql(
                "SELECT rowid, mode, filename, value FROM Cache WHERE key = ? AND raw = 1", (key,)
            ).fetchall()
            return rows[0] if rows else None

        row = self._guarded(read, write=False, default=None)
        if row is None:
            return None
        rowid, mode, filename, value = row
        if mode not in _SAFE_MODES:
            raw = raw_row_bytes(self.directory, mode, filename, value)
            self._discard_counted(key, raw, "unsafe (pickled) entry")
            return None
        if filename:
            path = value_file(self.directory, filename)
            if path is None:
                self._discard_counted(key, b"", "value file path outside its namespace")
                return None
            try:
                data = path.read_bytes()
            except OSError:  # the value file vanished (another process culled it)
                return None
        elif mode == MODE_RAW and isinstance(value, int):
            self._discard_counted(key, str(value).encode(), "not an envelope (a bare number)")
            return None
        else:
            data = raw_row_bytes(self.directory, mode, None, value)
        if touch:
            self._touched[int(rowid)] = (key, time.time())
        return data

    def _discard_counted(self, key: str, raw: bytes, reason: str) -> None:
        self._discard(key, raw, reason)
        self._count("corrupt")

    def _discard(self, key: str, data: bytes, reason: str) -> None:
        from cache.disk.quarantine import write_quarantine  # a bad entry only

        write_quarantine(self._root, self.service, key, data, reason, self._clock())

        def delete(cache: diskcache.Cache) -> None:
            retry_locked(cache, lambda: cache.delete(key))

        with contextlib.suppress(CacheWriteFailed):
            self._guarded(delete, write=True, default=None)

    def _write(self, key: str, data: bytes, env: Envelope) -> None:
        tag = expiry_tag(env.expires_at, env.status)

        def write(cache: diskcache.Cache) -> None:
            disk = cache.disk
            assert isinstance(disk, SafeDisk)

            def once() -> None:
                disk.written_file = None
                try:
                    if not self._touched:
                        cache.set(key, data, tag=tag)
                        return
                    # Culling happens inside `set`: move this process's pending access times
                    # first, in the same transaction, so its own reads always count for LRU.
                    with cache.transact():
                        self._apply_touches(cache)
                        cache.set(key, data, tag=tag)
                except BaseException:
                    if disk.written_file is not None:  # a value file no row will point to
                        disk.remove(disk.written_file)
                    raise

            retry_locked(cache, once)

        self._guarded(write, write=True, default=None)

    def _remove(self, key: str) -> bool:
        def delete(cache: diskcache.Cache) -> bool:
            return bool(retry_locked(cache, lambda: cache.delete(key)))

        return self._guarded(delete, write=True, default=False)

    def _keys(self) -> Iterator[str]:
        """Entry keys, straight from SQL: a pickled key is skipped, never unpickled."""

        def keys(cache: diskcache.Cache) -> list[tuple[Any]]:
            return cache._sql("SELECT key FROM Cache WHERE raw = 1 ORDER BY rowid").fetchall()

        empty: list[tuple[Any]] = []
        for (key,) in self._guarded(keys, write=False, default=empty):
            if isinstance(key, str) and not key.startswith(STAT_PREFIX):
                yield key

    def _count_entries(self) -> int:
        return int(self._guarded(lambda cache: len(cache), write=False, default=0))

    def _persist_counters(self, pending: Mapping[str, int]) -> None:
        """One transaction: the counts, and the access times of rows read since the last one."""
        if not pending and not self._touched:
            return

        def persist(cache: diskcache.Cache) -> None:
            def once() -> None:
                with cache.transact():
                    for name, n in pending.items():
                        cache._sql(ADD_STAT_SQL, (name, n))
                    self._apply_touches(cache)

            retry_locked(cache, once)

        try:
            self._guarded(persist, write=True, default=None)
        finally:
            self._touched.clear()

    def _apply_touches(self, cache: diskcache.Cache) -> None:
        """Move the access time of rows read since the last write (inside a transaction)."""
        if self._touched:
            cache._con.executemany(
                "UPDATE Cache SET access_time = ? WHERE rowid = ? AND key = ? AND raw = 1",
                [(at, rowid, key) for rowid, (key, at) in self._touched.items()],
            )
            self._touched.clear()

    def _stat_values(self) -> Mapping[str, Any]:
        def rows(cache: diskcache.Cache) -> dict[str, Any]:
            return dict(cache._sql(f"SELECT name, value FROM {STATS_TABLE}").fetchall())

        return self._guarded(rows, write=False, default={})

    def _save_run(self, snapshot: dict[str, Any]) -> None:
        def save(cache: diskcache.Cache) -> None:
            def once() -> None:
                with cache.transact():
                    rows = cache._sql(
                        f"SELECT value FROM {STATS_TABLE} WHERE name = ?", (RUN_HISTORY_KEY,)
                    ).fetchall()
                    history = parse_run_history(rows[0][0] if rows else None)
                    cache._sql(_SET_STAT, (LAST_RUN_KEY, json.dumps(snapshot)))
                    cache._sql(_SET_STAT, (RUN_HISTORY_KEY, append_history(history, snapshot)))

            retry_locked(cache, once)

        self._guarded(save, write=True, default=None)

    def close(self) -> None:
        self.flush_counters()
        self._close_cache()

    def __enter__(self) -> DiskNamespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DiskCache:
    """All namespaces under one `data/cache/` directory; opened lazily, closed together."""

    def __init__(
        self,
        root: Path,
        *,
        size_limit_bytes: int = DEFAULT_SIZE_LIMIT,
        clock: Clock = utcnow,
    ) -> None:
        self.root = root
        self._size_limit = size_limit_bytes
        self._clock = clock
        self._open: dict[str, DiskNamespace] = {}

    def namespace(self, service: str) -> DiskNamespace:
        check_namespace(service)
        store = self._open.get(service)
        if store is None:
            store = DiskNamespace(
                self.root / service,
                service,
                size_limit_bytes=self._size_limit,
                clock=self._clock,
            )
            self._open[service] = store
        return store

    def existing_namespaces(self) -> list[str]:
        """Namespaces on disk (directories holding a diskcache database)."""
        return existing_namespaces(self.root)

    @property
    def rebuilt(self) -> dict[str, str]:
        return {name: ns.rebuilt for name, ns in self._open.items() if ns.rebuilt is not None}

    def stats(self) -> dict[str, NamespaceStats]:
        """Per namespace on disk or opened this run: entries, run counters, any rebuild note."""
        names = sorted({*self.existing_namespaces(), *self.rebuilt})
        return {name: self.namespace(name).stats() for name in names}

    def flush_counters(self) -> None:
        for store in self._open.values():
            store.flush_counters()

    def close(self) -> None:
        for store in self._open.values():
            store.close()
        self._open.clear()

    def __enter__(self) -> DiskCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def existing_namespaces(root: Path) -> list[str]:
    """Directories under `root` that are namespaces: a valid name holding a `cache.db`."""
    try:
        entries = list(root.iterdir()) if root.is_dir() else []
    except OSError:
        return []
    return sorted(
        p.name
        for p in entries
        if p.is_dir()
        and not p.is_symlink()
        and is_namespace_name(p.name)
        and (p / DB_NAME).is_file()
    )
