"""The service-namespaced cache: the interface (backend.py), the envelope (envelope.py), the key
function (keys.py), and the backends (disk/, memory.py, and redis.py for a team)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cache.backend import DEFAULT_SIZE_LIMIT, Clock
from cache.envelope import utcnow

if TYPE_CHECKING:
    from cache.backend import CacheBackend

DEFAULT_STALE_WINDOW = timedelta(days=7)


def open_cache(
    directory: Path,
    *,
    size_limit_bytes: int = DEFAULT_SIZE_LIMIT,
    clock: Clock = utcnow,
    redis_url: str | None = None,
    stale_window: timedelta = DEFAULT_STALE_WINDOW,
    read_only: bool = False,
) -> CacheBackend:
    """The cache a run uses: the diskcache backend under `directory` (namespaces open lazily),
    or — with `redis_url` — that disk cache in front of one Redis shared by a team, entries
    kept there `stale_window` past their expiry (see cache/redis.py); `read_only` (a dry run's)
    copies nothing from Redis to the disk.

    The one place a backend is chosen.
    """
    if redis_url:
        from cache.redis import SharedCache

        return SharedCache(
            directory,
            redis_url,
            size_limit_bytes=size_limit_bytes,
            clock=clock,
            stale_window=stale_window,
            read_only=read_only,
        )
    from cache.disk.store import DiskCache

    return DiskCache(directory, size_limit_bytes=size_limit_bytes, clock=clock)
