"""What can go wrong in the cache, typed: a bad entry, an old entry, a disk that refuses writes.

A bad or old entry is never an error for the caller: it reads as a miss (and a bad one is moved
to the quarantine). A write the disk refuses is `CacheWriteFailed`: the caller keeps the answer
it already has and goes on without caching it (the hub reports it as a `disk_full` gap).
"""

from __future__ import annotations

import errno
import sys

# errno values that mean "this file system takes no more bytes" / "takes no writes at all".
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


class CorruptEntry(Exception):
    """An entry whose bytes are not a valid envelope or whose hash does not match."""


class LegacyEntry(CorruptEntry):
    """An envelope written by an older version (its header is not covered by the hash): it is
    never served (a miss, refetched and overwritten), `verify` counts it, `optimize` removes it."""


class UnsafeCacheEntry(CorruptEntry):
    """A row stored by something other than tradescout (e.g. a pickle): never deserialized."""


class CacheError(Exception):
    """A cache operation that could not be carried out; `reason` is a gap reason."""

    reason = "disk_full"

    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"cache {service}: {detail}")
        self.service = service
        self.detail = detail


class CacheWriteFailed(CacheError):
    """The disk refused a write (full, over a file-size limit, read-only): nothing half-written
    stays behind, the entry is simply not cached."""

    reason = "disk_full"


def _is_sqlite(exc: BaseException, kind: str) -> bool:
    """Whether `exc` is one of sqlite3's errors. Not imported here: the cache's envelope and
    keys (which the pure core uses) need no database, and without sqlite3 loaded no exception
    can be one of its errors."""
    sqlite3 = sys.modules.get("sqlite3")
    return sqlite3 is not None and isinstance(exc, getattr(sqlite3, kind))


def storage_fault(exc: BaseException) -> str | None:
    """'disk full' / 'read-only' / 'disk I/O error' when `exc` (or what it was raised from) is
    the file system refusing a write; None for anything else (a lock, a bug, corruption)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_sqlite(current, "Error"):
            name = str(getattr(current, "sqlite_errorname", "") or "")
            text = str(current)
            if name == "SQLITE_FULL" or "disk is full" in text:
                return "disk full"
            if name.startswith("SQLITE_READONLY") or "readonly database" in text:
                return "read-only"
            if name.startswith("SQLITE_IOERR") or "disk I/O error" in text:
                return "disk I/O error"
        elif isinstance(current, OSError):
            if current.errno in _FULL_ERRNOS:
                return "disk full"
            if current.errno in _READ_ONLY_ERRNOS:
                return "read-only"
        current = current.__cause__ or current.__context__
    return None


def is_damaged_database(exc: BaseException) -> bool:
    """SQLite saying the file is not (or no longer) a usable database — corrupt, truncated,
    garbage — as opposed to busy, locked, full, read-only or not permitted."""
    if not _is_sqlite(exc, "DatabaseError") or storage_fault(exc) is not None:
        return False
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc)
    # Not SQLITE_CANTOPEN: a permission or a missing directory says nothing about the file
    # (a database path that is a directory is recognised before SQLite is asked). Not a missing
    # table either: a namespace whose creation a full disk cut short is only incomplete, and
    # diskcache completes its schema on the next open.
    return (
        name == "SQLITE_NOTADB"
        or name.startswith("SQLITE_CORRUPT")
        or "malformed" in text
        or "not a database" in text
    )
