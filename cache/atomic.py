"""Atomic file writes: temp file in the same directory, fsync, rename.

A run killed at any point leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from cache.envelope import has_special_floats

DROP_BEHIND_BYTES = 16 << 20
"""How much a `DropBehind` file writes between two hints to the kernel."""

_ADVISE = getattr(os, "posix_fadvise", None)  # not on macOS or Windows: plain writes there


class DropBehind:
    """A file written once and not read back by this process (hundreds of MB of closed-trade
    lines): every `DROP_BEHIND_BYTES` the kernel is told it may write out and drop the pages
    written so far (`POSIX_FADV_DONTNEED`, as GNU dd's `oflag=nocache` does). Writeback then runs
    while the file is still being written, so the closing fsync has little left to do, and the
    next pages come from memory just released rather than from fresh memory (on the VMs measured,
    half a gigabyte written plain took 1.4–1.9 s with its fsync, 0.2–0.5 s this way). Advice
    only: the bytes on disk are the same either way. A page still being written out when its
    range is advised stays cached; the next hints cover the last few windows again for it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._written = 0
        self._advised = 0

    def write(self, data: bytes) -> int:
        count = self._handle.write(data)
        self._written += count
        if _ADVISE is not None and self._written - self._advised >= DROP_BEHIND_BYTES:
            self._handle.flush()
            start = max(0, self._advised - 4 * DROP_BEHIND_BYTES)
            with contextlib.suppress(OSError):  # advice refused: the write stands as it is
                _ADVISE(self._handle.fileno(), start, self._written - start, os.POSIX_FADV_DONTNEED)
            self._advised = self._written
        return count


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A file to stream into that appears at `path` only once complete (temp file in the same
    directory, fsync, rename); parent directories are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_streamer(path: Path) -> Iterator[DropBehind]:
    """`atomic_writer` for a large file written once and not read back this run (`DropBehind`)."""
    with atomic_writer(path) as handle:
        yield DropBehind(handle)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, creating parent directories."""
    with atomic_writer(path) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Pretty, stable JSON (sorted keys are *not* forced: callers order their sections)."""
    atomic_write_bytes(path, pretty_json(obj) + b"\n")


def pretty_json(obj: Any) -> bytes:
    """Indented UTF-8 JSON; NaN/Infinity refused (ValueError) as `json`'s allow_nan=False does.

    orjson (a 500-ticker report: ~40 ms against ~400 ms with `json`), which would write
    NaN/Infinity as null, so output with a null is checked for them; what orjson cannot encode
    (an integer beyond 64 bits) takes the standard library.
    """
    try:
        fast = orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False).encode("utf-8")
    if b"null" in fast and has_special_floats(obj):
        raise ValueError("Out of range float values are not JSON compliant")
    return fast


def move_aside(path: Path, why: str = "damaged") -> Path:
    """Rename a damaged file or directory to `{name}.{why}-{stamp}` beside it (nothing is
    deleted: a post-mortem can still read it). Raises OSError when the rename fails."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.{why}-{stamp}-{os.getpid()}")
    os.rename(path, target)
    return target


def own_directory(path: Path) -> str | None:
    """Make sure `path` is a directory, creating it if needed; a file (or a symlink) standing
    where it belongs is moved aside first. Returns what was moved aside, if anything; raises
    OSError when the directory cannot be had (a read-only file system)."""
    note = None
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        moved = move_aside(path)
        note = f"{path.name} was not a directory; moved to {moved.name}"
    path.mkdir(parents=True, exist_ok=True)
    return note


def probe_writable(directory: Path) -> None:
    """Create `directory` if needed and prove a file can be written in it (raises OSError):
    a run checks before it fetches anything that its results could be kept."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".probe.", suffix=".tmp", dir=directory)
    os.close(fd)
    os.unlink(tmp)
