"""Transitional names for the callers not yet moved to cache.backend / cache.disk (removed once
the pipeline imports the interface)."""

from cache.backend import CacheRead, ReadState
from cache.disk.store import DiskCache as CacheRoot
from cache.disk.store import existing_namespaces

__all__ = ["CacheRead", "CacheRoot", "ReadState", "existing_namespaces"]
