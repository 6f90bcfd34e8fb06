"""Transitional: the diskcache maintenance moved to cache/disk/scan.py."""

from cache.disk.scan import *  # noqa: F403
