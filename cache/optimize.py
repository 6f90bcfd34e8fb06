"""Transitional: the diskcache maintenance moved to cache/disk/optimize.py."""

from cache.disk.optimize import *  # noqa: F403
