"""`cache verify`: re-hash every entry; quarantine what fails, so it is never served again.

An entry fails when its bytes are not a tradescout envelope, its hash (over header and payload)
does not match, its key does not match the row, its value file is missing or lies outside the
namespace, or it is something diskcache would unpickle (a pickled key or value: such a row is
copied aside as inert bytes, never decoded). A failed entry's bytes and the reason go to
`cache/_quarantine/{service}/`, and its row is deleted — but only if it is still the row that
was checked (another process may have rewritten it with a good value in the meantime). A value
file outside the namespace is never read, copied or removed: only the row goes.

An entry of an older envelope version is not a failure: it is counted as `legacy` (never served,
refetched on next use, removed by `cache optimize`). A damaged namespace (its database
unreadable, or not a regular file; the namespace path a file or a symlink) is moved aside
whole; one that merely cannot be opened (read-only, busy) is reported and left alone.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import diskcache

from cache.disk.paths import is_namespace_name
from cache.disk.quarantine import quarantine_namespace, write_quarantine
from cache.disk.scan import Checked, namespace_dirs, read_size_limit, scan_namespace
from cache.disk.store import (
    ADD_STAT_SQL,
    DEFAULT_SIZE_LIMIT,
    namespace_damage,
    open_diskcache,
    raw_row_bytes,
    retry_locked,
)
from cache.errors import is_damaged_database, storage_fault


@dataclass(frozen=True)
class Quarantined:
    service: str
    key: str
    reason: str
    path: str | None  # the quarantined copy, relative to the cache root (None: not kept)


@dataclass(frozen=True)
class NamespaceVerify:
    service: str
    entries: int
    sound: int
    quarantined: int
    legacy: int = 0


@dataclass(frozen=True)
class VerifyResult:
    at: str
    namespaces: tuple[NamespaceVerify, ...]
    quarantined: tuple[Quarantined, ...]
    notes: tuple[str, ...] = ()

    @property
    def entries(self) -> int:
        return sum(n.entries for n in self.namespaces)

    @property
    def legacy(self) -> int:
        return sum(n.legacy for n in self.namespaces)

    @property
    def sound(self) -> bool:
        return not self.quarantined and not self.notes

    @property
    def exit_code(self) -> int:
        """0 when every entry is sound (legacy ones included), 3 when any was quarantined or a
        namespace could not be checked."""
        return 0 if self.sound else 3

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "entries": self.entries,
            "legacy": self.legacy,
            "sound": self.sound,
            "namespaces": [asdict(n) for n in self.namespaces],
            "quarantined": [asdict(q) for q in self.quarantined],
            "notes": list(self.notes),
        }


def _quarantine_rows(
    root: Path, directory: Path, bad: list[Checked], now: datetime
) -> list[Quarantined]:
    cache = open_diskcache(directory, read_size_limit(directory) or DEFAULT_SIZE_LIMIT)
    try:
        moved = [
            retry_locked(cache, partial(_move_row, cache, root, directory, c, now)) for c in bad
        ]
    finally:
        cache.close()
    return [m for m in moved if m is not None]


def _move_row(
    cache: diskcache.Cache, root: Path, directory: Path, item: Checked, now: datetime
) -> Quarantined | None:
    """Copy one bad row aside and delete it, if it is still the row that was checked."""
    row = item.row
    reason = item.problem or "unknown"
    with cache._transact() as (sql, cleanup):
        found = sql(
            "SELECT mode, filename, value FROM Cache WHERE rowid = ? AND store_time = ?",
            (row.rowid, row.store_time),
        ).fetchall()
        if not found:
            return None  # rewritten or removed since the check
        raw = raw_row_bytes(directory, *found[0])
        copy = write_quarantine(root, directory.name, row.label, raw, reason, now)
        sql("DELETE FROM Cache WHERE rowid = ?", (row.rowid,))
        sql(ADD_STAT_SQL, ("corrupt", 1))
        cleanup(found[0][1])  # SafeDisk removes only a value file inside the namespace
    path = copy.relative_to(root).as_posix() if copy is not None else None
    return Quarantined(directory.name, row.label, reason, path)


def _whole(root: Path, service: str, reason: str, now: datetime) -> Quarantined:
    moved = quarantine_namespace(root, service, reason, now)
    return Quarantined(service, "<whole namespace>", reason, moved.path)


def _damaged_paths(root: Path) -> list[tuple[str, str]]:
    """Namespace-named paths that are damaged before SQLite is even asked."""
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        if not is_namespace_name(path.name):
            continue
        damage = namespace_damage(path)
        if damage is not None:
            found.append((path.name, damage))
    return found


def verify(root: Path, *, now: datetime) -> VerifyResult:
    """Check every entry of every namespace under `root`; quarantine the ones that fail."""
    namespaces: list[NamespaceVerify] = []
    quarantined: list[Quarantined] = []
    notes: list[str] = []
    for service, damage in _damaged_paths(root):
        try:
            quarantined.append(_whole(root, service, damage, now))
        except OSError as exc:
            notes.append(f"{service}: {damage}, and it cannot be moved aside ({exc})")
        namespaces.append(NamespaceVerify(service, 0, 0, 1))
    for directory in namespace_dirs(root):
        service = directory.name
        try:
            scan = scan_namespace(directory, decode=True)
            bad = [c for c in scan.checked if c.problem is not None]
            moved = _quarantine_rows(root, directory, bad, now) if bad else []
        except (sqlite3.Error, OSError, diskcache.Timeout) as exc:
            if not is_damaged_database(exc):
                why = storage_fault(exc) or str(exc)
                notes.append(f"{service}: not checked, its database cannot be opened ({why})")
                continue
            try:
                quarantined.append(_whole(root, service, f"unreadable cache database: {exc}", now))
            except OSError as move_exc:
                notes.append(f"{service}: unreadable, and it cannot be moved aside ({move_exc})")
            namespaces.append(NamespaceVerify(service, 0, 0, 1))
            continue
        quarantined.extend(moved)
        namespaces.append(
            NamespaceVerify(
                service=scan.service,
                entries=len(scan.checked),
                sound=len(scan.checked) - len(bad) - len(scan.legacy),
                quarantined=len(moved),
                legacy=len(scan.legacy),
            )
        )
    return VerifyResult(
        at=now.isoformat(),
        namespaces=tuple(namespaces),
        quarantined=tuple(quarantined),
        notes=tuple(notes),
    )
