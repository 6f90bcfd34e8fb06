"""The hub: every service client, the cache in front of them, the global ceiling, the counters.

`fetch` is cache-first: a fresh entry answers without the network; a miss or a stale entry goes
to the service's client (see services/client.py for the network path). Successful answers are
written back; "not found" answers are written as negative entries (short TTL) and returned as
`status="negative"`. When the service is down (ServiceUnavailable, CircuitOpen, RateLimited) a
stale entry is served instead, flagged `origin="stale"`. Everything else is a typed error the
pipeline turns into a gap.

Offline (`offline=True`) and unconfigured services (a required credential missing, or disabled)
never touch the network: a fresh entry answers as "cache", a stale one as "stale", and a miss
raises OfflineMode / NotConfigured. Quota exhaustion (ours or the service's signal) raises
QuotaExhausted and is not masked by a stale entry. A refusal is never masked either: FMP's
"outside your plan" (402) is written as a short negative entry, so the next run's plan goes to
the fallback first, and raised, so this run's caller tries the fallback now.

The cache is any `cache.backend.CacheBackend`. An answer the cache cannot store (the disk is
full or read-only: `CacheWriteFailed`) is still returned, kept in memory for the rest of the run
(so `peek` finds it), and listed in `cache_faults()`, which the pipeline reports as a gap.

What runs share — pacing, daily quotas, holds, the breakers' open state, single-flight — is the
hub's `services.coord` bundle: by default every process of the data root (state/coord.sqlite),
with `SharedSettings.redis_url` every process using that Redis (opened when the hub is entered,
falling back to the local backends). A network fetch of a key runs in one process at a time
across all of them: the others wait and read the answer from the cache (which they share when
they share a data root or a Redis cache), so three runs needing the same chart ask once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from cache.backend import CacheBackend, CacheRead, ReadState, classify
from cache.envelope import Envelope, utcnow
from cache.errors import CacheWriteFailed
from cache.keys import redact
from services.client import Answer, Ceiling, ServiceClient, install_log_redaction
from services.config import Effective, ServiceConfig, resolve
from services.coord.backends import Coordination, SharedSettings, open_coordination, open_local
from services.coord.keys import Scope
from services.coord.singleflight import TolerantFlight, once
from services.errors import (
    NotConfigured,
    OfflineMode,
    PlanLimited,
    ServiceError,
    ServiceUnavailable,
)
from services.quota import QuotaLedger, read_usage
from services.recordclass import record
from services.registry import SPECS
from services.spec import FetchResult, ServiceRequest

log = logging.getLogger("tradescout.services")
# A key's lease lives 10 s unless renewed (a killed owner on another machine frees it that
# soon; on this machine at once); a waiter waits for as long as a fetch behind a slow service's
# pacing may take before it asks itself.
LEASE_SECONDS = 10.0
WAIT_SECONDS = 600.0
_STATE_FAULTS: tuple[type[BaseException], ...] = (OSError, sqlite3.Error)


@record
class ServiceStatus:
    """What `tradescout services` and the report show about one service (never the key)."""

    service: str
    configured: bool
    reason: str | None
    breaker_state: str
    quota_used_today: int
    quota_left: int | None
    quota_exhausted_for_run: bool
    enabled: bool = True
    has_credential: bool = False
    upstream: str = "live"
    rate_per_second: float = 0.0
    daily_quota: int | None = None
    max_connections: int = 1
    base_urls: Mapping[str, str] | None = None
    # A refusal that keeps the service away right now: "blocked", "rate_blocked",
    # "quota_exhausted" (held in state/ until `held_until`), or a refusal of this run
    # ("bad_credential", "bad_identity", "consent_required").
    held: str | None = None
    held_detail: str | None = None
    held_until: datetime | None = None
    credential_env: str | None = None  # which kind of key is in use (never its value)


REFUSED = "refused"
"""The key of a cached refusal's payload: `{"refused": reason, "detail": …}` (a negative entry)."""


def refusal_of(payload: Any) -> tuple[str, str | None] | None:
    """(reason, detail) when a negative entry's payload is a remembered refusal (FMP's 402),
    else None: a cached refusal keeps its own reason, never reads as "not found"."""
    if not isinstance(payload, dict) or not isinstance(payload.get(REFUSED), str):
        return None
    detail = payload.get("detail")
    return payload[REFUSED], detail if isinstance(detail, str) else None


def _request_record(request: ServiceRequest) -> dict[str, Any]:
    """The (public) request as stored in an envelope."""
    return {
        "service": request.service,
        "dataset": request.dataset,
        "host": request.host,
        "path": request.path,
        "params": dict(request.params),
        "subjects": list(request.subjects),
    }


def _from_envelope(request: ServiceRequest, env: Envelope, origin: str) -> FetchResult:
    return FetchResult(
        request=request,
        status=env.status,
        payload=env.payload,
        origin=origin,  # type: ignore[arg-type]
        fetched_at=env.fetched_at,
        expires_at=env.expires_at,
        synthetic=env.synthetic,
    )


class ServiceHub:
    """All seven service clients for one run. Use as `async with ServiceHub(...) as hub:`.

    `read_only=True` builds a hub that can only answer `peek` and `status` (a dry run's
    planning): it creates no file or directory — only namespaces already on disk are read, the
    quota ledger is read without being opened for writing — and builds no client."""

    def __init__(
        self,
        configs: Mapping[str, ServiceConfig],
        cache: CacheBackend,
        state_dir: Path,
        *,
        max_concurrency: int = 16,
        offline: bool = False,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
        read_only: bool = False,
        shared: SharedSettings | None = None,
    ) -> None:
        unknown = sorted(set(configs) - set(SPECS))
        if unknown:
            raise ValueError(f"unknown service(s): {', '.join(unknown)}")
        self._cache = cache
        self._offline = offline
        self._clock = clock
        self._ceiling = Ceiling(max_concurrency)
        self._effective: dict[str, Effective] = {
            name: resolve(spec, configs.get(name)) for name, spec in SPECS.items()
        }
        self._present: set[str] | None = None  # read-only: the namespaces on disk
        # read-only: today's counts per upstream (None: unreadable or lost, taken as spent)
        self._used: dict[tuple[str, str], int] | None = {}
        self._uncached: dict[tuple[str, str], Envelope] = {}
        self._cache_faults: dict[str, CacheWriteFailed] = {}
        self._quota: QuotaLedger | None = None
        self._clients: dict[str, ServiceClient] = {}
        self._shared = shared or SharedSettings()
        self._state_dir = state_dir
        self._coord: Coordination | None = None
        self._entered = False
        self._since = clock()  # when this run began (reset on entry): see `_flown`
        self._stored_here: set[str] = set()  # keys this hub fetched and stored itself
        if read_only:
            self._present = set(cache.existing_namespaces())
            self._used = read_usage(state_dir, clock().date())
        else:
            quota = self._quota = QuotaLedger(state_dir, clock=clock)
            coord = self._coord = open_local(
                state_dir, clock=clock, ledger=quota, pacing=self._shared.pacing
            )
            self._clients = {
                name: ServiceClient(
                    eff,
                    quota=quota,
                    coordination=coord,
                    ceiling=self._ceiling,
                    clock=clock,
                    sleep=sleep,
                    transport=transport,
                    state_dir=state_dir,
                )
                for name, eff in self._effective.items()
            }
        self._inflight: dict[tuple[str, str], asyncio.Future[Envelope]] = {}
        self._open = False

    # -- lifecycle -------------------------------------------------------------------------------
    async def __aenter__(self) -> ServiceHub:
        install_log_redaction()
        if not self._entered and self._coord is not None and self._quota is not None:
            self._entered = True
            self._since = self._clock()
            self._coord = await open_coordination(
                self._shared,
                self._state_dir,
                clock=self._clock,
                ledger=self._quota,
                local=self._coord,
            )
            self._coord.flight = TolerantFlight(self._coord.flight, _STATE_FAULTS)
            for client in self._clients.values():
                client.coord = self._coord
            await self._take_legacy_holds(self._quota, self._coord)
            await asyncio.gather(*(c.load_view() for c in self._clients.values()))
        self._open = True  # each service's pool opens on its first network request
        return self

    async def _take_legacy_holds(self, ledger: QuotaLedger, coord: Coordination) -> None:
        """Holds an earlier version kept in the quota ledger become flags (once)."""
        now = self._clock()
        for hold in ledger.take_legacy_holds():
            seconds = (hold.until - now).total_seconds()
            if seconds > 0:
                with contextlib.suppress(*_STATE_FAULTS):
                    scope = Scope(hold.upstream, hold.service)
                    await coord.flags.raise_for(scope, hold.reason, seconds, hold.detail)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pending = list(self._inflight.values())
        for future in pending:
            future.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        for client in self._clients.values():
            await client.aclose()
        if self._coord is not None:
            await self._coord.aclose()
        if self._quota is not None:
            self._quota.close()
        self._open = False

    def sharing(self) -> dict[str, Any]:
        """How this run's limits and cache were shared (the report's `discovery_metadata.shared`):
        `limits` is "machine" (every process of the data root), "process" or "redis"; when Redis
        was asked for, where (never a password), the machines count, and — if it went away — when,
        why and a one-sentence note. Nothing secret, nothing that fails."""
        coord = self._coord
        out: dict[str, Any] = {
            "limits": "process" if self._shared.pacing == "process" else "machine"
        }
        notes: list[str] = []
        if coord is not None and coord.note:
            notes.append(coord.note)
        status = coord.status if coord is not None else None
        if status is not None:
            out.update(
                limits="redis" if status.shared else "local",
                redis=status.where,
                machines=status.machines,
                degraded_at=status.degraded_at.isoformat() if status.degraded_at else None,
            )
            note = status.note()
            if note:
                notes.append(note)
        cache_sharing = getattr(self._cache, "sharing", None)
        if callable(cache_sharing):
            cache_info = cache_sharing()
            out["cache"] = cache_info.get("cache")
            if cache_info.get("note"):
                notes.append(str(cache_info["note"]))
        else:
            out["cache"] = "local"
        out["note"] = " ".join(notes) if notes else None
        return out

    # -- introspection ---------------------------------------------------------------------------
    def _client(self, service: str) -> ServiceClient:
        if self._present is not None:
            raise RuntimeError("a read-only ServiceHub plans; it does not fetch")
        try:
            return self._clients[service]
        except KeyError:
            raise KeyError(f"unknown service {service!r}; known: {', '.join(SPECS)}") from None

    def status(self, service: str) -> ServiceStatus:
        eff = self._effective.get(service)
        if eff is None:
            raise KeyError(f"unknown service {service!r}; known: {', '.join(SPECS)}")
        reason = eff.unconfigured_reason
        client = self._clients.get(service)
        if client is not None:
            breaker, used, left = (
                str(client.breaker.state),
                client.quota_used_today(),
                client.quota_left(),
            )
            hold, refused = client.held(), client.refused
            held = hold.reason if hold is not None else (refused.reason if refused else None)
            held_detail = hold.detail if hold is not None else (refused.detail if refused else None)
            held_until = hold.until if hold is not None else None
            exhausted = client.exhausted_for_run is not None or held == "quota_exhausted"
        else:  # read-only: what the ledger on disk says, nothing open for writing
            known = self._used
            used = (known or {}).get((eff.upstream, service), 0)
            breaker, exhausted = "closed", False
            held = held_detail = held_until = None
            left = None if eff.daily_quota is None else max(0, eff.daily_quota - used)
            if known is None and eff.daily_quota is not None:
                left = 0  # a count that cannot be read is taken as spent
        cred = eff.credential_spec
        return ServiceStatus(
            service=service,
            configured=reason is None,
            reason=reason,
            breaker_state=breaker,
            quota_used_today=used,
            quota_left=left,
            quota_exhausted_for_run=exhausted,
            enabled=eff.config.enabled,
            has_credential=eff.credential is not None,
            upstream=eff.upstream,
            rate_per_second=eff.rate_per_second,
            daily_quota=eff.daily_quota,
            max_connections=eff.max_connections,
            base_urls=dict(eff.base_urls),
            held=held,
            held_detail=held_detail,
            held_until=held_until,
            credential_env=cred.env if cred is not None else None,
        )

    def peek(self, request: ServiceRequest, *, verify: bool = True) -> CacheRead:
        """What the cache holds for a request, without counting: the header is read, the
        payload decoded only if `envelope.payload` is used. `verify=False` (planning: only
        the state and the expiry are read) skips the hash check; that read's payload is not to
        be used."""
        eff = self._effective[request.service]
        if self._present is not None and request.service not in self._present:
            return CacheRead(ReadState.MISS)  # read-only: never create a namespace to look
        key = request.cache_key(eff.upstream)
        held = self._uncached.get((request.service, key))
        if held is not None:
            return classify(held, self._clock())
        store = self._cache.namespace(request.service)
        return store.peek(key) if verify else store.head(key)

    def uncached(self, request: ServiceRequest) -> bool:
        """Whether this run's answer to `request` is held in memory only (the cache refused it)."""
        key = request.cache_key(self._effective[request.service].upstream)
        return (request.service, key) in self._uncached

    def cache_faults(self) -> dict[str, CacheWriteFailed]:
        """Per service, the first write the cache refused this run (its answers were kept in
        memory instead): the pipeline makes each a `disk_full` gap."""
        return dict(self._cache_faults)

    def add_planned(self, service: str, n: int) -> None:
        client = self._clients.get(service)
        if client is not None:
            client.usage.planned += n

    def set_concurrency(self, n: int) -> None:
        """Resize the global in-flight ceiling (the memory watcher shrinks it at run time)."""
        self._ceiling.set_limit(n)

    @property
    def concurrency(self) -> int:
        """The current global ceiling (after any `set_concurrency`)."""
        return self._ceiling.limit

    @property
    def max_concurrency(self) -> int:
        """Alias of `concurrency` (the name the pipeline uses for its scheduling window)."""
        return self._ceiling.limit

    @property
    def offline(self) -> bool:
        return self._offline

    @property
    def cache(self) -> CacheBackend:
        """The cache this hub reads and writes (the run's one cache)."""
        return self._cache

    def usage(self) -> dict[str, dict[str, Any]]:
        """Per-service counters for the report's `service_usage` (JSON-ready)."""
        report: dict[str, dict[str, Any]] = {}
        for name, client in self._clients.items():
            u = client.usage
            report[name] = {
                "planned": u.planned,
                "cache_hits": u.cache_hits,
                "stale_served": u.stale_served,
                "negative": u.negatives,
                "network_requests": u.network_requests,
                "retries": u.retries,
                "rate_limited": u.rate_limited,
                "errors": u.errors,
                "shared_inflight": u.shared_inflight,
                "breaker_state": str(client.breaker.state),
                "quota_used_today": client.quota_used_today(),
                "quota_exhausted_for_run": client.exhausted_for_run is not None,
                "latency_ms_p50": u.percentile(0.5),
                "latency_ms_p95": u.percentile(0.95),
            }
            if client.session is not None:  # its requests are not in network_requests
                report[name]["session_setups"] = client.session.setups
                report[name]["session_requests"] = client.session.requests
        return report

    # -- fetch -------------------------------------------------------------------------------------
    async def fetch(self, request: ServiceRequest) -> FetchResult:
        """Cache first, then the network; see the module docstring for every outcome."""
        return await self._fetch(request, force=False)

    async def fetch_fresh(self, request: ServiceRequest) -> FetchResult:
        """Ask the service even when the cache is fresh (the nightly refresh renews entries
        before they expire). No stale fallback: a failure raises, so a refresh never counts
        an old entry as renewed. Quota, breaker, limiter and retries apply as for `fetch`."""
        return await self._fetch(request, force=True)

    async def probe(self, request: ServiceRequest) -> Answer:
        """Ask the service once through its client's whole path (remembered refusals and holds,
        quota, Yahoo's session, limiter, breaker, retries) with the cache left out both ways:
        `doctor` must hear the service itself, and its probes (picked for cheapness: five days
        of SPY, one observation) are not what discover plans, so they are never stored."""
        eff = self._effective[request.service]
        if eff.unconfigured_reason is not None:  # never sent without its key or identity
            raise NotConfigured(request.service, eff.unconfigured_reason, dataset=request.dataset)
        if self._offline:
            raise OfflineMode(request.service, "offline: not probing", dataset=request.dataset)
        if not self._open:
            raise RuntimeError("ServiceHub.probe called outside `async with ServiceHub(...)`")
        return await self._client(request.service).request(request)

    def cached(self, request: ServiceRequest) -> FetchResult | None:
        """A fresh `ok` answer straight from the cache, counted as `fetch` counts a hit; None —
        nothing counted — whenever `fetch` has more to decide (stale, missing, negative, held in
        memory). The engine serves its cache reads through it without a task each."""
        eff = self._effective[request.service]
        key = request.cache_key(eff.upstream)
        if (request.service, key) in self._uncached or request.dataset not in eff.spec.datasets:
            return None
        client = self._client(request.service)
        env = self._cache.namespace(request.service).get_fresh(key)
        if env is None:
            return None
        client.usage.cache_hits += 1
        return _from_envelope(request, env, "cache")

    async def _fetch(self, request: ServiceRequest, *, force: bool) -> FetchResult:
        client = self._client(request.service)
        eff = self._effective[request.service]
        dataset = eff.spec.datasets.get(request.dataset)
        if dataset is None:
            raise ValueError(f"{request.service} has no dataset {request.dataset!r}")
        store = self._cache.namespace(request.service)
        key = request.cache_key(eff.upstream)
        held = self._uncached.get((request.service, key))
        if force:
            read = CacheRead(ReadState.MISS)
        else:
            read = classify(held, self._clock()) if held is not None else store.get(key)
        if read.state is ReadState.FRESH and read.envelope is not None:
            client.usage.cache_hits += 1
            return _from_envelope(request, read.envelope, "cache")

        blocked: ServiceError | None = None
        if self._offline:
            blocked = OfflineMode(
                request.service, f"offline: not fetching {request.path}", dataset=request.dataset
            )
        elif eff.unconfigured_reason is not None:
            blocked = NotConfigured(
                request.service, eff.unconfigured_reason, dataset=request.dataset
            )
        elif not self._open:
            raise RuntimeError("ServiceHub.fetch called outside `async with ServiceHub(...)`")
        if blocked is not None:
            if read.envelope is not None:
                client.usage.stale_served += 1
                return _from_envelope(request, read.envelope, "stale")
            raise blocked

        try:
            env = await self._shared_network(client, request, key, force=force)
        except ServiceUnavailable as exc:  # incl. CircuitOpen, RateLimited: stale-if-error
            client.usage.errors += 1
            if read.envelope is not None:
                client.usage.stale_served += 1
                log.warning("%s: %s; serving a stale entry", request.service, exc.detail)
                return _from_envelope(request, read.envelope, "stale")
            raise
        except ServiceError:
            client.usage.errors += 1
            raise
        return _from_envelope(request, env, "network")

    async def _flown(
        self, client: ServiceClient, request: ServiceRequest, key: str, *, force: bool
    ) -> Envelope:
        """The network call in one process at a time per key (every process sharing the
        coordination): a process that finds the key's lease taken waits, then reads what the
        owner stored — any fresh entry, or for a forced fetch one stored since this run began
        (as fresh as this run could make it: a refresh does not renew what a discover beside it
        just fetched). If the
        owner stored nothing (its call failed) or the wait runs out, it asks itself. The leader
        looks in the cache once more first (the double check: the previous owner may have
        stored it just before letting go)."""
        coord = self._coord
        if coord is None:
            return await self._network_and_store(client, request, key)
        store = self._cache.namespace(request.service)

        async def read() -> Envelope | None:
            found = store.peek(key)
            env = found.envelope if found.fresh else None
            if env is None:
                return None
            if force and (env.fetched_at <= self._since or key in self._stored_here):
                return None  # not another process's answer since this run began: ask anew
            client.usage.shared_inflight += 1
            return env

        async def lead() -> Envelope:
            # Checked again under the lease: another process may have stored it between this
            # run's cache read and the moment its lease was released.
            stored = await read()
            return (
                stored
                if stored is not None
                else await self._network_and_store(client, request, key)
            )

        return await once(coord.flight, key, lead, read, ttl=LEASE_SECONDS, timeout=WAIT_SECONDS)

    async def _network_and_store(
        self, client: ServiceClient, request: ServiceRequest, key: str
    ) -> Envelope:
        """The network call and the write-back, as one unit (so an answer is cached even when
        the caller that asked for it was cancelled meanwhile)."""
        eff = client.eff
        dataset = eff.spec.datasets[request.dataset]
        try:
            answer = await client.request(request)
        except PlanLimited as exc:  # remembered briefly: the next plan goes to the fallback
            with contextlib.suppress(CacheWriteFailed):  # the refusal is raised all the same
                self._cache.namespace(request.service).put(
                    key,
                    {REFUSED: exc.reason, "detail": exc.detail},
                    dataset=request.dataset,
                    ttl=dataset.negative_ttl,
                    request=_request_record(request),
                    status="negative",
                    upstream=eff.upstream,
                )
            raise
        now = self._clock()
        ttl = dataset.ttl_at(now) if answer.verdict == "ok" else dataset.negative_ttl
        synthetic = answer.synthetic or eff.upstream == "sandbox"
        if answer.verdict == "negative":
            client.usage.negatives += 1
        fields: dict[str, Any] = {
            "dataset": request.dataset,
            "request": _request_record(request),
            "status": answer.verdict,
            # A synthetic answer is labelled so even when a live-mode URL points at the sandbox.
            "upstream": "sandbox" if synthetic else eff.upstream,
        }
        self._stored_here.add(key)
        try:
            return self._cache.namespace(request.service).put(
                key, answer.payload, ttl=ttl, **fields
            )
        except CacheWriteFailed as exc:
            log.warning("%s: answer not cached (%s); kept for this run", request.service, exc)
            self._cache_faults.setdefault(request.service, exc)
            env, _ = Envelope.build(
                key=key,
                service=request.service,
                payload=answer.payload,
                fetched_at=now,
                expires_at=now + ttl,
                **{**fields, "request": redact(fields["request"])},
            )
            self._uncached[(request.service, key)] = env
            return env

    async def _shared_network(
        self, client: ServiceClient, request: ServiceRequest, key: str, *, force: bool = False
    ) -> Envelope:
        """One network call per cache key at a time: concurrent fetches of the same request share
        it (a cancelled waiter does not cancel the call the others wait on), and across processes
        `_flown` makes the others wait for it."""
        slot = (request.service, key)
        future = self._inflight.get(slot)
        if future is None:
            future = asyncio.ensure_future(self._flown(client, request, key, force=force))
            self._inflight[slot] = future

            def done(f: asyncio.Future[Envelope]) -> None:
                self._inflight.pop(slot, None)
                if not f.cancelled():
                    f.exception()  # retrieved here, so a future nobody awaits never warns

            future.add_done_callback(done)
        else:
            client.usage.shared_inflight += 1
        return await asyncio.shield(future)
