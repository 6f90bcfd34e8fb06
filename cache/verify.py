"""Transitional: the diskcache maintenance moved to cache/disk/verify.py."""

from cache.disk.verify import *  # noqa: F403
