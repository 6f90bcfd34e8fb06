"""`cache report`: what the cache holds and what it is worth — measured, never asserted.

Every figure comes from a read-only scan (cache/scan.py): counters are read from each
namespace's statistics table, envelopes are decoded and re-hashed in memory, nothing is touched
(no counter moves, no access time changes, nothing is quarantined — that is `cache verify`).

What the byte figures count:
- `disk_bytes`: every file under the namespace directory — `cache.db`, its `-wal` journal and
  the value files diskcache keeps for large entries — except SQLite's transient `-shm` index;
- `entry_bytes`: the stored envelope bytes (database blob length or value file size), which is
  also what the reclaim figures count for removed entries;
- `volume_bytes`: diskcache's own measure that its size limit applies to (database pages plus
  value files).

"Never read since written": diskcache (least-recently-used policy) sets a row's access time to
its store time on write and moves it on every counted read, so `access_time == store_time` means
no run has read the entry since it was written (`peek` does not move it).
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from cache.disk.optimize import plan_namespace, reclaim_of
from cache.disk.paths import QUARANTINE_DIR
from cache.disk.scan import (
    NamespaceScan,
    find_strays,
    namespace_dirs,
    quarantined_files,
    scan_namespace,
    tree_bytes,
)
from cache.errors import storage_fault

REPORT_VERSION = 1
_EXAMPLES = 10
_MIN_LOOKUPS_FOR_ADVICE = 10


def human_bytes(n: float) -> str:
    """Decimal units (1 MB = 1,000,000 bytes), one decimal."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - unreachable


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def hit_ratio(counters: dict[str, Any]) -> float | None:
    """hits / (hits + misses + stale): a stale read is not a hit."""
    hits = int(counters.get("hits") or 0)
    lookups = hits + int(counters.get("misses") or 0) + int(counters.get("stale") or 0)
    return _ratio(hits, lookups)


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def namespace_figures(scan: NamespaceScan, now: datetime, quarantined: int) -> dict[str, Any]:
    """One namespace's figures (pure, from a scan)."""
    envelopes = [c.envelope for c in scan.checked if c.envelope is not None]
    failures = [c for c in scan.checked if c.problem is not None]
    fresh = sum(1 for e in envelopes if e.is_fresh(now))
    fetched = [e.fetched_at for e in envelopes]
    reclaim = reclaim_of(plan_namespace(scan, now))
    last_run = dict(scan.last_run) if scan.last_run else None
    if last_run is not None:
        last_run["hit_ratio"] = hit_ratio(last_run)
    entries = len(scan.checked)
    return {
        "entries": entries,
        "entry_bytes": sum(c.row.stored_bytes for c in scan.checked),
        "disk_bytes": scan.disk_bytes,
        "volume_bytes": scan.volume,
        "size_limit_bytes": scan.size_limit,
        "fresh": fresh,
        "expired": len(envelopes) - fresh,
        "negative": sum(1 for e in envelopes if e.status == "negative"),
        "legacy": len(scan.legacy),
        "sandbox": sum(1 for e in envelopes if e.upstream == "sandbox"),
        "never_read": sum(1 for c in scan.checked if c.row.never_read),
        "oldest_fetched_at": _iso(min(fetched, default=None)),
        "newest_fetched_at": _iso(max(fetched, default=None)),
        "integrity_failures": len(failures),
        "integrity_failure_examples": [
            {"key": c.row.label, "problem": c.problem} for c in failures[:_EXAMPLES]
        ],
        "quarantined_files": quarantined,
        "orphan_files": len(scan.orphan_files),
        "orphan_bytes": sum(size for _, size in scan.orphan_files),
        "counters_lifetime": dict(scan.counters),
        "hit_ratio_lifetime": hit_ratio(scan.counters),
        "last_run": last_run,
        "reclaimable": reclaim.to_json(),
    }


def recommendations(
    namespaces: dict[str, dict[str, Any]], strays: list[dict[str, Any]]
) -> list[str]:
    """Advice that follows from the figures (each line names the figure it follows from)."""
    out: list[str] = []
    for name, ns in namespaces.items():
        entries = ns["entries"]
        rec = ns["reclaimable"]
        if ns["expired"] and rec["expired_entries"]:
            pct = round(100 * ns["expired"] / entries) if entries else 0
            out.append(
                f"{name}: {pct}% expired ({ns['expired']} of {entries}), `cache optimize` "
                f"reclaims {human_bytes(rec['expired_bytes'])}"
            )
        if rec["culled_entries"]:
            out.append(
                f"{name}: {human_bytes(ns['volume_bytes'])} is over its size limit of "
                f"{human_bytes(ns['size_limit_bytes'] or 0)}; `cache optimize` culls "
                f"{rec['culled_entries']} least-recently-used entries "
                f"({human_bytes(rec['culled_bytes'])})"
            )
        if ns["orphan_files"]:
            out.append(
                f"{name}: {ns['orphan_files']} value files belong to no entry; `cache optimize` "
                f"removes them ({human_bytes(ns['orphan_bytes'])})"
            )
        if ns["legacy"]:
            out.append(
                f"{name}: {ns['legacy']} entries are of an older envelope version (never served; "
                "refetched when needed); `cache optimize` removes them"
            )
        if ns["integrity_failures"]:
            out.append(
                f"{name}: {ns['integrity_failures']} entries fail their integrity check; "
                "`cache verify` quarantines them"
            )
        last = ns["last_run"] or {}
        lookups = sum(int(last.get(k) or 0) for k in ("hits", "misses", "stale"))
        if lookups >= _MIN_LOOKUPS_FOR_ADVICE and not last.get("hits") and ns["fresh"]:
            out.append(
                f"{name}: the last run had 0 hits in {lookups} lookups although {ns['fresh']} "
                "fresh entries exist; the callers' keys may not match the stored ones"
            )
        if entries >= _MIN_LOOKUPS_FOR_ADVICE and ns["never_read"] * 2 > entries:
            pct = round(100 * ns["never_read"] / entries)
            out.append(
                f"{name}: {pct}% of entries ({ns['never_read']} of {entries}) were never read "
                "since written; the data fetched for them may not be needed"
            )
    if strays:
        names = ", ".join(s["path"] for s in strays[:_EXAMPLES])
        more = f" and {len(strays) - _EXAMPLES} more" if len(strays) > _EXAMPLES else ""
        total = sum(int(s["bytes"]) for s in strays)
        out.append(
            f"{len(strays)} strays in the cache root ({names}{more}; {human_bytes(total)}): "
            "`cache optimize` removes them"
        )
    return out or ["No action needed: nothing expired, over its limit, stray or corrupt."]


def build_cache_report(
    root: Path, *, now: datetime, trend: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Measure the cache under `root` (read-only)."""
    namespaces: dict[str, dict[str, Any]] = {}
    unreadable: list[dict[str, str]] = []
    qroot = root / QUARANTINE_DIR
    for directory in namespace_dirs(root):
        quarantined = quarantined_files(root, directory.name)
        try:
            scan = scan_namespace(directory, decode=True)
        except (sqlite3.Error, OSError) as exc:
            error = storage_fault(exc) or str(exc)
            unreadable.append({"namespace": directory.name, "error": error})
            continue
        namespaces[directory.name] = namespace_figures(scan, now, quarantined)
    stray_list = find_strays(root)
    strays = [asdict(s) for s in stray_list]
    figures = list(namespaces.values())

    def total(name: str) -> int:
        return sum(int(ns[name] or 0) for ns in figures)

    lifetime = {
        k: sum(int(ns["counters_lifetime"].get(k, 0)) for ns in figures)
        for k in ("hits", "misses", "stale", "writes", "corrupt")
    }
    stray_bytes = sum(s.bytes for s in stray_list)
    totals = {
        "namespaces": len(namespaces),
        "entries": total("entries"),
        "entry_bytes": total("entry_bytes"),
        "disk_bytes": total("disk_bytes"),
        "fresh": total("fresh"),
        "expired": total("expired"),
        "negative": total("negative"),
        "legacy": total("legacy"),
        "never_read": total("never_read"),
        "integrity_failures": total("integrity_failures"),
        "quarantined_files": total("quarantined_files"),
        "quarantine_bytes": tree_bytes(qroot) if qroot.is_dir() and not qroot.is_symlink() else 0,
        "strays": len(strays),
        "stray_bytes": stray_bytes,
        "counters_lifetime": lifetime,
        "hit_ratio_lifetime": hit_ratio(lifetime),
        "reclaimable_entries": sum(ns["reclaimable"]["entries"] for ns in figures),
        "reclaimable_bytes": sum(ns["reclaimable"]["bytes"] for ns in figures) + stray_bytes,
    }
    return {
        "report_version": REPORT_VERSION,
        "generated_at": now.isoformat(),
        "cache_root": str(root),
        "bytes_counted": (
            "disk_bytes: all files under a namespace directory (cache.db, -wal, value files; "
            "not the transient -shm); entry_bytes and reclaimable bytes: stored envelope "
            "bytes; volume_bytes: what diskcache's size limit applies to"
        ),
        "namespaces": namespaces,
        "strays": strays,
        "totals": totals,
        "unreadable": unreadable,
        "recommendations": [
            *(
                f"{u['namespace']}: the cache database cannot be read ({u['error']}); "
                "`cache verify` quarantines the namespace"
                for u in unreadable
            ),
            *recommendations(namespaces, strays),
        ],
        "trend": list(trend or []),
    }
