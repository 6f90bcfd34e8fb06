"""The diskcache backend: the store (store.py), its safety checks (paths.py, quarantine.py) and
the maintenance only a disk needs (scan.py, optimize.py, verify.py)."""

from cache.disk.store import DiskCache, DiskNamespace

__all__ = ["DiskCache", "DiskNamespace"]
