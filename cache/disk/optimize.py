"""`cache optimize`: remove expired entries, cull namespaces over their size limit, remove
orphaned value files and strays, vacuum.

The work is planned first from a read-only scan (a pure function of the rows), then the plan is
executed. A dry run stops after planning, so it reports exactly the figures the real run reaches
on the same cache. Execution deletes a row only if it is still the row that was planned (same
store time; for a culled row, same access time too): an entry rewritten or read by another
process in the meantime is left alone.

Expired rows are found from the diskcache `tag` (the entry's expiry in epoch seconds, rounded
up, indexed by `tag_index`), and entries of an older envelope version (never served: see
cache/envelope.py) from their first bytes, so planning never needs to decode a payload. Nothing
outside a namespace is ever removed: value files only when they lie inside it, a symlinked stray
as a link (never what it points to).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import diskcache

from cache.disk.paths import value_file
from cache.disk.scan import (
    NamespaceScan,
    Row,
    Stray,
    find_strays,
    namespace_dirs,
    scan_namespace,
    tree_bytes,
)
from cache.disk.store import DEFAULT_SIZE_LIMIT, open_diskcache, retry_locked
from cache.errors import storage_fault

_DELETE_CHUNK = 500


@dataclass(frozen=True)
class NamespacePlan:
    """What optimizing one namespace removes (pure: computed from a scan)."""

    service: str
    expired: tuple[Row, ...]
    culled: tuple[Row, ...]
    legacy: tuple[Row, ...]
    orphans: tuple[tuple[str, int], ...]
    size_limit_bytes: int | None
    volume_bytes: int


def is_expired(row: Row, now_epoch: float) -> bool:
    """The tag is the expiry rounded up, so `tag <= now` never removes a fresh entry."""
    return row.tag is not None and row.tag <= now_epoch


def footprints(scan: NamespaceScan) -> dict[int, float]:
    """What removing each row takes off diskcache's volume (rowid -> bytes, an estimate).

    A value file counts its size. A row stored in the database frees its share of the data
    pages (pages beyond the empty schema), in proportion to its stored bytes: rows of 3 kB
    take a 4 kB page each, small rows share pages, and both are right on average.
    """
    rows = [c.row for c in scan.checked]
    in_db = sum(r.stored_bytes for r in rows if not r.filename)
    data_pages = max(0, scan.db_bytes - scan.schema_bytes)
    share = data_pages / in_db if in_db else 0.0
    return {r.rowid: float(r.stored_bytes) if r.filename else r.stored_bytes * share for r in rows}


def plan_namespace(scan: NamespaceScan, now: datetime) -> NamespacePlan:
    """Legacy and expired rows, then least-recently-used rows until the volume is under the
    size limit."""
    now_epoch = now.timestamp()
    rows = [c.row for c in scan.checked]
    legacy = [r for r in rows if r.legacy]
    expired = [r for r in rows if not r.legacy and is_expired(r, now_epoch)]
    culled: list[Row] = []
    limit = scan.size_limit
    if limit is not None and scan.volume > limit:
        cost = footprints(scan)
        volume = scan.volume - sum(cost[r.rowid] for r in (*expired, *legacy))
        survivors = sorted(
            (r for r in rows if not r.legacy and not is_expired(r, now_epoch)),
            key=lambda r: (r.access_time, r.rowid),
        )
        for row in survivors:
            if volume <= limit:
                break
            culled.append(row)
            volume -= cost[row.rowid]
    return NamespacePlan(
        service=scan.service,
        expired=tuple(expired),
        culled=tuple(culled),
        legacy=tuple(legacy),
        orphans=tuple(scan.orphan_files),
        size_limit_bytes=limit,
        volume_bytes=scan.volume,
    )


@dataclass(frozen=True)
class NamespaceReclaim:
    service: str
    expired_entries: int
    expired_bytes: int
    culled_entries: int
    culled_bytes: int
    orphan_files: int
    orphan_bytes: int
    size_limit_bytes: int | None
    legacy_entries: int = 0
    legacy_bytes: int = 0

    @property
    def entries(self) -> int:
        return self.expired_entries + self.culled_entries + self.legacy_entries

    @property
    def bytes(self) -> int:
        return self.expired_bytes + self.culled_bytes + self.legacy_bytes + self.orphan_bytes

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "entries": self.entries, "bytes": self.bytes}


def reclaim_of(plan: NamespacePlan) -> NamespaceReclaim:
    return NamespaceReclaim(
        service=plan.service,
        expired_entries=len(plan.expired),
        expired_bytes=sum(r.stored_bytes for r in plan.expired),
        culled_entries=len(plan.culled),
        culled_bytes=sum(r.stored_bytes for r in plan.culled),
        orphan_files=len(plan.orphans),
        orphan_bytes=sum(size for _, size in plan.orphans),
        size_limit_bytes=plan.size_limit_bytes,
        legacy_entries=len(plan.legacy),
        legacy_bytes=sum(r.stored_bytes for r in plan.legacy),
    )


@dataclass(frozen=True)
class OptimizeResult:
    dry_run: bool
    at: str
    namespaces: tuple[NamespaceReclaim, ...]
    strays: tuple[Stray, ...]
    disk_bytes_before: int
    disk_bytes_after: int | None = None  # measured after a real run (vacuum included)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def entries(self) -> int:
        return sum(n.entries for n in self.namespaces)

    @property
    def bytes(self) -> int:
        return sum(n.bytes for n in self.namespaces) + sum(s.bytes for s in self.strays)

    def figures(self) -> dict[str, Any]:
        """The reclaim figures: identical for a dry run and the real run on the same cache."""
        return {
            "namespaces": [n.to_json() for n in self.namespaces],
            "strays": [asdict(s) for s in self.strays],
            "entries": self.entries,
            "bytes": self.bytes,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "at": self.at,
            **self.figures(),
            "disk_bytes_before": self.disk_bytes_before,
            "disk_bytes_after": self.disk_bytes_after,
            "notes": list(self.notes),
        }


def _delete_rows(directory: Path, plan: NamespacePlan) -> dict[str, tuple[int, int]]:
    """Delete the planned rows that are still as planned; kind -> (count, bytes) removed."""
    cache = open_diskcache(directory, plan.size_limit_bytes or DEFAULT_SIZE_LIMIT)
    removed = {"expired": [0, 0], "culled": [0, 0], "legacy": [0, 0]}
    try:
        batches: list[tuple[str, Row]] = [("expired", r) for r in plan.expired]
        batches += [("legacy", r) for r in plan.legacy]
        batches += [("culled", r) for r in plan.culled]
        for start in range(0, len(batches), _DELETE_CHUNK):
            chunk = batches[start : start + _DELETE_CHUNK]
            retry_locked(cache, partial(_delete_chunk, cache, chunk, removed))
        _vacuum(cache)
    finally:
        cache.close()
    return {kind: (n, b) for kind, (n, b) in removed.items()}


def _delete_chunk(
    cache: diskcache.Cache, chunk: list[tuple[str, Row]], removed: dict[str, list[int]]
) -> None:
    counts = {kind: [0, 0] for kind in removed}
    with cache._transact() as (sql, cleanup):
        for kind, row in chunk:
            if kind == "culled":
                cur = sql(
                    "DELETE FROM Cache WHERE rowid = ? AND store_time = ? AND access_time = ?",
                    (row.rowid, row.store_time, row.access_time),
                )
            else:
                cur = sql(
                    "DELETE FROM Cache WHERE rowid = ? AND store_time = ?",
                    (row.rowid, row.store_time),
                )
            if cur.rowcount:
                counts[kind][0] += 1
                counts[kind][1] += row.stored_bytes
                cleanup(row.filename)  # SafeDisk removes only a value file inside
    for kind, (n, b) in counts.items():  # counted once the transaction committed
        removed[kind][0] += n
        removed[kind][1] += b


def _vacuum(cache: Any) -> None:
    """Rebuild the database file and truncate the WAL; waits for other writers like any write."""
    deadline = time.monotonic() + 60.0
    for statement in ("VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"):
        while True:
            try:
                cache._sql(statement).fetchall()
                break
            except sqlite3.OperationalError as exc:
                if storage_fault(exc) is not None:
                    return  # no room to rebuild the file: the rows are deleted all the same
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    break  # another process kept the database busy: vacuum next time
                time.sleep(0.05)


def _remove_orphans(directory: Path, orphans: tuple[tuple[str, int], ...]) -> tuple[int, int]:
    count = size_total = 0
    for rel, size in orphans:
        path = value_file(directory, rel)
        if path is None or path.is_symlink():
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            count += 1
            size_total += size
    return count, size_total


def _disk_bytes(root: Path) -> int:
    return tree_bytes(root) if root.exists() else 0


def optimize(root: Path, *, now: datetime, dry_run: bool) -> OptimizeResult:
    """Plan (and unless `dry_run`, carry out) the clean-up of every namespace under `root`."""
    before = _disk_bytes(root)
    wall = time.time()
    plans: list[tuple[Path, NamespacePlan]] = []
    notes: list[str] = []
    for directory in namespace_dirs(root):
        try:
            scan = scan_namespace(directory, decode=False, now_wall=wall)
        except (sqlite3.Error, OSError) as exc:
            why = storage_fault(exc) or str(exc)
            notes.append(f"{directory.name}: skipped, its database cannot be read ({why})")
            continue
        plans.append((directory, plan_namespace(scan, now)))
    strays = tuple(find_strays(root, now_wall=wall))
    if dry_run:
        return OptimizeResult(
            dry_run=True,
            at=now.isoformat(),
            namespaces=tuple(reclaim_of(p) for _, p in plans),
            strays=strays,
            disk_bytes_before=before,
            notes=tuple(notes),
        )
    reclaimed: list[NamespaceReclaim] = []
    for directory, plan in plans:
        try:
            done = _delete_rows(directory, plan)
        except (sqlite3.Error, OSError, diskcache.Timeout) as exc:
            why = storage_fault(exc) or str(exc)
            notes.append(f"{plan.service}: not optimized, its database refused the change ({why})")
            continue
        orph_n, orph_b = _remove_orphans(directory, plan.orphans)
        reclaimed.append(
            NamespaceReclaim(
                service=plan.service,
                expired_entries=done["expired"][0],
                expired_bytes=done["expired"][1],
                culled_entries=done["culled"][0],
                culled_bytes=done["culled"][1],
                orphan_files=orph_n,
                orphan_bytes=orph_b,
                size_limit_bytes=plan.size_limit_bytes,
                legacy_entries=done["legacy"][0],
                legacy_bytes=done["legacy"][1],
            )
        )
    removed: list[Stray] = []
    for stray in strays:
        target = root / stray.path
        if stray.kind == "dir" and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)  # unlinks symlinks inside, never follows
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
        if not target.exists() and not target.is_symlink():
            removed.append(stray)
    return OptimizeResult(
        dry_run=False,
        at=now.isoformat(),
        namespaces=tuple(reclaimed),
        strays=tuple(removed),
        disk_bytes_before=before,
        disk_bytes_after=_disk_bytes(root),
        notes=tuple(notes),
    )
