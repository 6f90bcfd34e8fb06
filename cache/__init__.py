"""The service-namespaced cache: the interface (backend.py), the envelope (envelope.py), the key
function (keys.py), and the backends (disk/, memory.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cache.backend import DEFAULT_SIZE_LIMIT, Clock
from cache.envelope import utcnow

if TYPE_CHECKING:
    from cache.backend import CacheBackend


def open_cache(
    directory: Path, *, size_limit_bytes: int = DEFAULT_SIZE_LIMIT, clock: Clock = utcnow
) -> CacheBackend:
    """The cache a run uses: the diskcache backend under `directory` (namespaces open lazily).

    The one place a backend is chosen; a shared backend (issue 16) is selected here too.
    """
    from cache.disk.store import DiskCache

    return DiskCache(directory, size_limit_bytes=size_limit_bytes, clock=clock)
