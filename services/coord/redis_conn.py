"""The Redis connection of the shared backends: short timeouts, no silent retries.

A Redis that stops answering must cost a run milliseconds, not a stall: connect and socket
timeouts are one second and redis-py's own retries are off, because the first failure switches
the run to the local backends for good (see `failover`). The URL may carry a password, so only
`where()` (scheme, host, port, database) is ever shown. The policy is declared once, in
`cache.redis`, which the shared cache uses too (cache imports nothing of services).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cache.redis import TIMEOUT_SECONDS, connect_async, down_errors, where

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["TIMEOUT_SECONDS", "connect", "down_errors", "where"]


def connect(url: str) -> Redis:
    return connect_async(url)
