"""`cache verify`: re-hash every entry; quarantine what fails, so it is never served again.

An entry fails when its bytes are not a tradescout envelope, its payload hash does not match, its
key does not match the row, its value file is missing, or it is something diskcache would
unpickle (a pickled key or value: such a row is copied aside as inert bytes, never decoded).
A failed entry's bytes and the reason go to `cache/_quarantine/{service}/`, and its row is
deleted — but only if it is still the row that was checked (another process may have rewritten
it with a good value in the meantime).
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cache.atomic import atomic_write_text
from cache.scan import Checked, namespace_dirs, read_size_limit, scan_namespace
from cache.store import (
    ADD_STAT_SQL,
    DEFAULT_SIZE_LIMIT,
    open_diskcache,
    quarantine_path,
    raw_row_bytes,
    write_quarantine,
)


@dataclass(frozen=True)
class Quarantined:
    service: str
    key: str
    reason: str
    path: str  # the quarantined copy, relative to the cache root


@dataclass(frozen=True)
class NamespaceVerify:
    service: str
    entries: int
    sound: int
    quarantined: int


@dataclass(frozen=True)
class VerifyResult:
    at: str
    namespaces: tuple[NamespaceVerify, ...]
    quarantined: tuple[Quarantined, ...]

    @property
    def entries(self) -> int:
        return sum(n.entries for n in self.namespaces)

    @property
    def sound(self) -> bool:
        return not self.quarantined

    @property
    def exit_code(self) -> int:
        """0 when every entry is sound, 3 when any was quarantined."""
        return 0 if self.sound else 3

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "entries": self.entries,
            "sound": self.sound,
            "namespaces": [asdict(n) for n in self.namespaces],
            "quarantined": [asdict(q) for q in self.quarantined],
        }


def _quarantine_rows(
    root: Path, directory: Path, bad: list[Checked], now: datetime
) -> list[Quarantined]:
    service = directory.name
    qdir = quarantine_path(root, service)
    cache = open_diskcache(directory, read_size_limit(directory) or DEFAULT_SIZE_LIMIT)
    done: list[Quarantined] = []
    try:
        for item in bad:
            row = item.row
            with cache._transact(retry=True) as (sql, cleanup):
                found = sql(
                    "SELECT mode, filename, value FROM Cache WHERE rowid = ? AND store_time = ?",
                    (row.rowid, row.store_time),
                ).fetchall()
                if not found:
                    continue  # rewritten or removed since the check
                raw = raw_row_bytes(directory, *found[0])
                reason = item.problem or "unknown"
                copy = write_quarantine(qdir, row.label, raw, reason, now)
                sql("DELETE FROM Cache WHERE rowid = ?", (row.rowid,))
                sql(ADD_STAT_SQL, ("corrupt", 1))
                cleanup(found[0][1])
            done.append(Quarantined(service, row.label, reason, copy.relative_to(root).as_posix()))
    finally:
        cache.close()
    return done


def _quarantine_namespace(root: Path, directory: Path, error: str, now: datetime) -> Quarantined:
    """A namespace whose database cannot be read is moved aside whole; the next run starts it
    afresh (its entries were unreachable anyway)."""
    qdir = quarantine_path(root, directory.name)
    qdir.mkdir(parents=True, exist_ok=True)
    target = qdir / f"{now:%Y%m%dT%H%M%S%f}_namespace"
    directory.rename(target)
    reason = f"unreadable cache database: {error}"
    atomic_write_text(target.parent / f"{target.name}.why", f"{directory.name}\n{reason}\n")
    return Quarantined(
        directory.name, "<whole namespace>", reason, target.relative_to(root).as_posix()
    )


def verify(root: Path, *, now: datetime) -> VerifyResult:
    """Check every entry of every namespace under `root`; quarantine the ones that fail."""
    namespaces: list[NamespaceVerify] = []
    quarantined: list[Quarantined] = []
    for directory in namespace_dirs(root):
        try:
            scan = scan_namespace(directory, decode=True)
        except sqlite3.DatabaseError as exc:
            quarantined.append(_quarantine_namespace(root, directory, str(exc), now))
            namespaces.append(NamespaceVerify(directory.name, 0, 0, 1))
            continue
        bad = [c for c in scan.checked if c.problem is not None]
        moved = _quarantine_rows(root, directory, bad, now) if bad else []
        quarantined.extend(moved)
        namespaces.append(
            NamespaceVerify(
                service=scan.service,
                entries=len(scan.checked),
                sound=len(scan.checked) - len(bad),
                quarantined=len(moved),
            )
        )
    return VerifyResult(
        at=now.isoformat(), namespaces=tuple(namespaces), quarantined=tuple(quarantined)
    )
