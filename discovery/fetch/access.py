"""How a run reaches the services and the cache: the hub and its cache built in one place, and
the two lookups planning asks them through (coverage of a request, availability of a service).
`[shared]` decides here what they share: the data root's state/ (the default) or one Redis.

Discover, refresh and the dry run all use these; the dry run gets a read-only hub, so planning
is the same code whether or not anything will be sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta

import httpx

from cache import open_cache
from cache.backend import CacheRead, ReadState
from cache.envelope import utcnow
from discovery.plan.planner import (
    Availability,
    AvailabilityLookup,
    Coverage,
    CoverageLookup,
    Refused,
)
from discovery.settings import Settings
from discovery.upstream import Target, service_configs
from services.coord.backends import SharedSettings
from services.hub import ServiceHub, refusal_of
from services.spec import ServiceRequest


@contextlib.contextmanager
def open_hub(
    settings: Settings,
    target: Target,
    *,
    clock: Callable[[], datetime] = utcnow,
    max_concurrency: int | None = None,
    read_only: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> Iterator[ServiceHub]:
    """The run's hub over the data root's cache (closed on exit). Enter the hub itself with
    `async with` before fetching. `transport` and `sleep` replace the network and the backoff
    waits (tests)."""
    layout = settings.layout
    # Offline is "no network at all": a shared Redis is network too.
    shared = SharedSettings() if target.offline else settings.shared_settings()
    cache = open_cache(
        layout.cache_dir,
        size_limit_bytes=settings.cache_size_limit_mb << 20,
        clock=clock,
        redis_url=shared.redis_url,
        stale_window=timedelta(days=settings.shared.stale_window_days),
        read_only=read_only,
    )
    try:
        yield ServiceHub(
            service_configs(settings, target),
            cache,
            layout.state_dir,
            max_concurrency=max_concurrency or settings.max_concurrency,
            offline=target.offline,
            clock=clock,
            read_only=read_only,
            transport=transport,
            sleep=sleep or asyncio.sleep,
            shared=shared,
        )
    finally:
        cache.close()


def coverage_of(read: CacheRead) -> Coverage | Refused:
    """What planning needs to know of a cache entry. A negative entry's (small) payload is
    decoded to tell a remembered refusal from a "nothing known" answer."""
    env = read.envelope
    if read.state == ReadState.FRESH:
        if read.status == "negative":
            refused = refusal_of(env.payload) if env is not None else None
            return Refused(*refused) if refused is not None else "negative"
        return "fresh"
    return "stale" if read.state == ReadState.STALE else "miss"


def coverage_lookup(hub: ServiceHub) -> CoverageLookup:
    def lookup(request: ServiceRequest) -> Coverage | Refused:
        read = hub.peek(request, verify=False)  # the state and status only: no payload read
        if read.state == ReadState.FRESH and read.status == "negative":
            read = hub.peek(request)  # its payload is read: checked first
        return coverage_of(read)

    return lookup


def availability_of(
    offline: bool,
    unconfigured_reason: str | None,
    quota_left: int | None,
    exhausted_for_run: bool = False,
    breaker_state: str = "closed",
    held: str | None = None,
    held_detail: str | None = None,
) -> Availability:
    """Whether a service may be called this run (pure; the first reason that applies wins).
    `held`: a refusal that keeps the service away now (blocked, rate_blocked, bad_credential…)."""
    if offline:
        return Availability(False, "offline", detail="offline: not fetched")
    if unconfigured_reason is not None:
        return Availability(False, "not_configured", detail=unconfigured_reason)
    if held is not None and held != "quota_exhausted":
        return Availability(False, held, detail=held_detail)
    if exhausted_for_run or (quota_left is not None and quota_left <= 0):
        return Availability(False, "quota_exhausted", 0, "today's quota is used up")
    if breaker_state == "open":
        return Availability(False, "circuit_open", detail="the circuit breaker is open")
    return Availability(True, quota_left=quota_left)


def availability_lookup(hub: ServiceHub) -> AvailabilityLookup:
    def lookup(service: str) -> Availability:
        status = hub.status(service)
        return availability_of(
            hub.offline,
            status.reason,
            status.quota_left,
            status.quota_exhausted_for_run,
            status.breaker_state,
            status.held,
            status.held_detail,
        )

    return lookup
