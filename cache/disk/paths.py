"""Where the diskcache backend may read, write and delete — and the checks that keep it there.

A namespace is `cache/{service}/` holding `cache.db` and diskcache's value files
(`xx/yy/<28 hex>.val`). A row's `filename` column is data that anything with write access to the
database can set, so a value file is only ever opened or removed when its name has diskcache's
own shape and its real path (symlinks resolved) lies inside the namespace directory. Bad
entries are kept for a post-mortem in `cache/_quarantine/{service}/`, but only when that is a
real directory inside the cache root: a quarantine that is a symlink (or a file) is never
written through.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

QUARANTINE_DIR = "_quarantine"
DB_NAME = "cache.db"
_NAMESPACE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_VALUE_FILE_RE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{28}\.val$")


def check_namespace(service: str) -> str:
    if not _NAMESPACE_RE.fullmatch(service):
        raise ValueError(f"invalid cache namespace {service!r}")
    return service


def is_namespace_name(name: str) -> bool:
    return _NAMESPACE_RE.fullmatch(name) is not None


def is_inside(path: Path, directory: Path) -> bool:
    """Whether `path`, symlinks resolved, lies strictly inside `directory` (resolved too)."""
    try:
        real = Path(os.path.realpath(path))
        base = Path(os.path.realpath(directory))
    except (OSError, ValueError):
        return False
    return real != base and real.is_relative_to(base)


def value_file(directory: Path, filename: object) -> Path | None:
    """The value file a row names, or None when the name is not diskcache's shape or the file
    would lie outside the namespace (`../../x`, an absolute path, a symlink out)."""
    if not isinstance(filename, str) or not _VALUE_FILE_RE.fullmatch(filename):
        return None
    path = directory / filename
    return path if is_inside(path, directory) else None


def quarantine_dir(cache_root: Path, service: str) -> Path | None:
    """`cache/_quarantine/{service}/`, created if needed; None when it cannot be a real
    directory inside the cache root (then nothing is written there)."""
    top = cache_root / QUARANTINE_DIR
    target = top / service
    for path in (top, target):
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            return None
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if target.is_symlink() or not is_inside(target, cache_root):
        return None
    return target
