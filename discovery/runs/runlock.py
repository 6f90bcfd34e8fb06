"""One refresh at a time: an OS file lock under `data/state/`, with the holder's pid inside.

The authority is `fcntl.flock` (exclusive, non-blocking) on the lock file: the kernel drops it
when the holder dies, even by SIGKILL, so a crashed refresh never blocks the next one. The pid
written into the file is only for the message "refresh already running (pid N)". A file left
behind with a pid but no flock held is stale and is taken over — whether that pid is dead or
has since been reused by an unrelated process, since only the flock says who runs.

The lock file is never deleted: unlinking a flock'ed file lets two processes lock two different
inodes under the same name. Release empties it instead. Something else at the lock's path (a
directory, a symlink) or at `state/` (a file) is moved aside, never followed or deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from cache.atomic import move_aside, own_directory

log = logging.getLogger("tradescout")

REFRESH_LOCK_NAME = "refresh.lock"


class LockHeld(Exception):
    """Raised by `with RunLock(...)` when another process holds the lock."""

    def __init__(self, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"refresh already running ({who})")
        self.pid = pid


def _parse_pid(text: str) -> int | None:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return int(first) if first.isdigit() else None


class RunLock:
    """A non-blocking, process-wide exclusive lock on `path`.

    `acquire()` returns False when another live holder has it (see `holder_pid()`); after a
    successful acquire, `took_over_from` names the pid a stale file still carried, if any.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None
        self.took_over_from: int | None = None

    @classmethod
    def for_refresh(cls, state_dir: Path) -> RunLock:
        """The lock `tradescout refresh` takes: `{state_dir}/refresh.lock`."""
        return cls(state_dir / REFRESH_LOCK_NAME)

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> bool:
        if self._handle is not None:
            return True
        own_directory(self.path.parent)
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_file()):
            # Never a lock (a lock is a regular file): a directory or link left at its path
            # is moved aside, not followed or deleted.
            moved = move_aside(self.path)
            log.warning("%s was not a lock file; moved to %s", self.path.name, moved.name)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        handle = os.fdopen(fd, "r+", encoding="ascii", errors="replace")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        except BaseException:
            handle.close()
            raise
        handle.seek(0)
        previous = _parse_pid(handle.read())
        self.took_over_from = previous if previous not in (None, os.getpid()) else None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        os.fsync(handle.fileno())
        self._handle = handle
        return True

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
                handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        finally:
            handle.close()

    def holder_pid(self) -> int | None:
        """The pid of the live holder, or None when nobody holds the lock."""
        if self._handle is not None:
            return os.getpid()
        try:
            handle = open(self.path, encoding="ascii", errors="replace")  # noqa: SIM115
        except FileNotFoundError:
            return None
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # held: read who holds it
            else:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                return None
            # The holder writes its pid right after locking; give it a moment if it is mid-write.
            for _ in range(20):
                handle.seek(0)
                pid = _parse_pid(handle.read())
                if pid is not None:
                    return pid
                time.sleep(0.005)
            return None

    def __enter__(self) -> RunLock:
        if not self.acquire():
            raise LockHeld(self.holder_pid())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        # Closing the descriptor drops the flock; explicit release() is still the contract.
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.close()
