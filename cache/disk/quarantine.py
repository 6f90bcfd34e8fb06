"""Moving bad things aside: one entry's bytes, or a whole damaged namespace.

An entry's bytes are copied, never decoded (a pickle stays an inert file), next to a `.why` file
saying what was wrong. A damaged namespace (corrupt, truncated or garbage database, a database
that is a directory, a namespace path that is a file or a symlink) is renamed into the
quarantine whole, so the next open starts it afresh; when the quarantine cannot be used it is
renamed to a sibling `{service}.damaged-{stamp}` inside the cache root instead (a stray that
`cache optimize` removes). Nothing is ever written outside the cache root.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cache.atomic import atomic_write_bytes, atomic_write_text
from cache.disk.paths import quarantine_dir


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%S%f")


def write_quarantine(
    cache_root: Path, service: str, label: str, raw: bytes, reason: str, now: datetime
) -> Path | None:
    """Keep a bad entry's bytes and why; returns the `.bin` path, or None when the quarantine
    is not a usable directory inside the cache root or the disk refuses the copy (the entry
    is removed all the same: it is never served again)."""
    qdir = quarantine_dir(cache_root, service)
    if qdir is None:
        return None
    digest = hashlib.sha256(label.encode("utf-8", "replace")).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", label)[:100]
    base = qdir / f"{_stamp(now)}_{safe}_{digest}"
    try:
        atomic_write_bytes(base.with_suffix(".bin"), raw)
        atomic_write_text(base.with_suffix(".why"), f"{label}\n{reason}\n")
    except OSError:
        return None
    return base.with_suffix(".bin")


@dataclass(frozen=True)
class MovedAside:
    """Where a damaged namespace went (relative to the cache root), or None if nowhere."""

    service: str
    reason: str
    path: str | None


def quarantine_namespace(cache_root: Path, service: str, reason: str, now: datetime) -> MovedAside:
    """Rename `cache/{service}` out of the way (see the module docstring).

    A path another process has just moved away counts as done. Raises OSError only when the
    path is still there and cannot be renamed (a read-only file system).
    """
    source = cache_root / service
    if not source.exists() and not source.is_symlink():
        return MovedAside(service, reason, None)
    qdir = quarantine_dir(cache_root, service)
    if qdir is not None:
        target = qdir / f"{_stamp(now)}_namespace"
        why = qdir / f"{target.name}.why"
    else:
        target = cache_root / f"{service}.damaged-{_stamp(now)}"
        why = None
    try:
        os.rename(source, target)
    except FileNotFoundError:
        return MovedAside(service, reason, None)  # moved by another process meanwhile
    if why is not None:
        with contextlib.suppress(OSError):
            atomic_write_text(why, f"{service}\n{reason}\n")
    return MovedAside(service, reason, target.relative_to(cache_root).as_posix())
