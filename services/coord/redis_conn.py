"""The Redis connection of the shared backends: short timeouts, no silent retries.

A Redis that stops answering must cost a run milliseconds, not a stall: connect and socket
timeouts are one second and redis-py's own retries are off, because the first failure switches
the run to the local backends for good (see `failover`). The URL may carry a password, so only
`where()` (scheme, host, port, database) is ever shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from redis.asyncio import Redis

TIMEOUT_SECONDS = 1.0


def down_errors() -> tuple[type[BaseException], ...]:
    """What "Redis is unreachable or unusable" looks like: any RedisError (connection, timeout,
    a server that is loading, read-only or out of memory) and the OS errors beneath them."""
    from redis.exceptions import RedisError

    return (RedisError, OSError, TimeoutError)


def connect(url: str) -> Redis:
    from redis.asyncio import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Redis.from_url(
        url,
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )


def where(url: str) -> str:
    """`redis://host:port/db` without user or password (for messages and reports)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError:
        return "redis (unparseable URL)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme or 'redis'}://{host}:{port}{parts.path or ''}"
