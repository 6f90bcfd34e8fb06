"""The shared resilient client: one upstream service's pool, limiter, breaker, quota and retries.

One `ServiceClient` per service; the hub owns them and the cache. A request's network path:

    refusals remembered (this run; a hold or an open     fail fast, no request
    breaker of any process sharing the coordination)
      → session (Yahoo: cookie + crumb, once per run)
        → per-service semaphore (≤ max_connections)     so gathered tasks never hit PoolTimeout
          → global ceiling slot (hub, resizable)         taken *before* the pacing slot, so a
                                                         request never waits after its slot
            → daily quota reservation (coord)            every attempt is a call upstream counts
              → shared limiter (coord: 1 call per        every attempt, retries included; every
                (1 + 2 %)/rate s, no burst)              process of the data root (or of the
                                                         Redis) takes its slots from one queue
                → breaker admit (one probe when half-open)
                  → GET right away, with the credential added now, under one deadline for the
                    whole exchange, redirects followed by hand (same origin only, at most 5),
                    the decoded body counted as it streams and cut at the dataset's cap
    all inside a tenacity loop (429/5xx/read timeouts/transport errors; Retry-After honoured;
    a malformed body once), the semaphore and slot released while it sleeps.

Limits, quotas, holds and the breaker's open state go through `services.coord` (the hub picks its
backends: every process of the data root through state/coord.sqlite by default, every process of
a team through Redis): a cron refresh beside an interactive discover takes its pacing slots from
the same queue, spends the same daily count and keeps away from a service the other was refused
by. The client keeps a view of that state (today's count, the holds in force), read when the hub
is entered and again once per request, for the synchronous `status()`.

A refusal (the service's own words: a refused key, a plan limit, a bot block…) is recognised by
the service's `refusal` rule, never retried, and — when it says so — remembered: for the rest of
the run (`stops_run`) or as an "open until" flag of the coordination (`hold`), which every later
run and every process sharing it obeys.

The credential exists only in the outgoing request: it is never in a `ServiceRequest`, a log
line, an error message (httpx's own exceptions quote the URL, so messages are rebuilt from the
redacted request and raised outside the `except` that caught them) or an envelope. It goes only
to the service's own origin: a redirect elsewhere is refused before anything is sent there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import field
from datetime import datetime, timedelta
from http.cookiejar import Cookie, CookieJar
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from services import redact
from services._common import default_verdict
from services.body import (
    ACCEPT_ENCODING,
    BodyMalformed,
    BodyTooDeep,
    BodyTooLarge,
    Collector,
    Inflater,
    decode_json,
    looks_like_json,
)
from services.breaker import BreakerState, CircuitBreaker
from services.browser import CURLE_FILESIZE_EXCEEDED, browser_transport, is_transport_error
from services.config import Effective
from services.coord.backends import Coordination
from services.coord.flags import CIRCUIT_OPEN, HOLDS, Flag
from services.coord.keys import Scope
from services.errors import (
    BadResponse,
    Blocked,
    CircuitOpen,
    MalformedBody,
    QuotaExhausted,
    RateBlocked,
    RateLimitedAttempt,
    ServiceError,
    SessionRefused,
    TooDeep,
    TooLarge,
    TooSlow,
    TransientFailure,
)
from services.quota import QuotaLedger, next_utc_midnight
from services.recordclass import record
from services.redact import install_log_redaction
from services.spec import Reply, ServiceRequest, Verdict

if TYPE_CHECKING:
    from tenacity import RetryCallState

log = logging.getLogger("tradescout.services")

USER_AGENT = "tradescout/0.1 (+local discovery tool)"
SYNTHETIC_HEADER = "X-Tradescout-Synthetic"
__all__ = [
    "USER_AGENT",
    "Answer",
    "Ceiling",
    "ServiceClient",
    "ServiceHold",
    "install_log_redaction",
]
# What a broken coordination store looks like (a state/ damaged or full mid-run, a Redis that
# answers nonsense): the client goes on without the shared view, never crashes on it.
_STATE_FAULTS: tuple[type[BaseException], ...] = (OSError, sqlite3.Error)


def describe(request: ServiceRequest) -> str:
    """`GET path?params` from the public request only (params never hold a credential)."""
    query = urlencode(sorted(request.params.items()))
    return f"GET {request.path}{'?' + query if query else ''}"


class Ceiling:
    """A resizable concurrency limit (the global max in-flight requests).

    Shrinking takes effect for every request that has not yet taken a slot; requests already
    in flight finish normally. Waiters are woken on every release or resize and re-check.
    """

    def __init__(self, limit: int) -> None:
        self._limit = max(1, int(limit))
        self._in_flight = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def set_limit(self, limit: int) -> None:
        self._limit = max(1, int(limit))
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        while self._in_flight >= self._limit:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._wake()


@record(frozen=False)
class ServiceUsage:
    """Counters of one service for this run (the report's `service_usage`)."""

    planned: int = 0
    cache_hits: int = 0
    stale_served: int = 0
    negatives: int = 0
    network_requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    errors: int = 0
    shared_inflight: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return round(ordered[index], 1)


@record
class ServiceHold:
    """A refusal remembered until `until` (aware UTC): an "open until" flag of the coordination
    as the client sees it."""

    reason: str
    detail: str
    until: datetime


@record
class Answer:
    """A classified upstream answer, ready for the cache."""

    verdict: Verdict
    payload: Any
    synthetic: bool


@record
class _Raw:
    """One HTTP answer, its body read under the caps (empty for a redirect)."""

    status: int
    headers: httpx.Headers
    body: bytes


class _NoCookies(CookieJar):
    """httpx keeps no cookie of any service: Yahoo's session cookie is sent explicitly, to
    Yahoo only, and no other answer's Set-Cookie can follow a request anywhere."""

    def set_cookie(self, cookie: Cookie) -> None:
        return


_HELD_ERRORS: Mapping[str, type[ServiceError]] = {
    "blocked": Blocked,
    "rate_blocked": RateBlocked,
    "quota_exhausted": QuotaExhausted,
}


class ServiceClient:
    """One service's network path (see the module docstring)."""

    def __init__(
        self,
        effective: Effective,
        *,
        quota: QuotaLedger,
        coordination: Coordination,
        ceiling: Ceiling,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
        transport: httpx.AsyncBaseTransport | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.eff = effective
        self.spec = effective.spec
        self.name = effective.name
        self.scope = Scope(effective.upstream, effective.name)
        self.coord = coordination  # the hub swaps it when it switches to Redis
        self.usage = ServiceUsage()
        self.breaker = CircuitBreaker(
            self.name,
            threshold=self.spec.breaker_threshold,
            reset_seconds=self.spec.breaker_reset_seconds,
            clock=clock,
        )
        self.exhausted_for_run: str | None = None  # why, once the service said "no more today"
        self.refused: ServiceError | None = None  # a refusal every later request would meet
        self._hold: ServiceHold | None = None  # the latest hold seen (any process)
        self._open_elsewhere: Flag | None = None  # a breaker another process opened
        self._used = quota.used_today(self.name, effective.upstream)  # today's count, as seen
        self._quota = quota
        self._ceiling = ceiling
        self._clock = clock
        self._sleep = sleep
        self._transport = transport
        self._semaphore = asyncio.Semaphore(effective.max_connections)
        self._http: httpx.AsyncClient | None = None
        self.session: Any = (
            self.spec.session(effective, state_dir, clock) if self.spec.session else None
        )
        redact.register(effective.credential)

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def deadline_seconds(self) -> float:
        """The whole exchange (connect, headers, body, redirects): twice the per-read timeout,
        so a silent service ends as a (retried) read timeout and a trickling one as too slow."""
        return 2.0 * self.eff.timeout_seconds

    async def open(self) -> None:
        if self._http is not None:
            return
        timeout = self.eff.timeout_seconds
        transport = self._transport
        headers = {"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
        if transport is None and self.spec.impersonate:
            transport = browser_transport(
                self.spec.impersonate, self.eff.max_connections, self._largest_cap()
            )
            headers.pop("Accept-Encoding")  # the browser's own; curl decodes it
        else:
            headers["User-Agent"] = USER_AGENT
        self._http = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=self.eff.max_connections,
                max_keepalive_connections=self.eff.max_connections,
                keepalive_expiry=30.0,
            ),
            timeout=httpx.Timeout(
                connect=min(5.0, timeout), read=timeout, write=timeout, pool=timeout
            ),
            headers=headers,
            cookies=_NoCookies(),
            follow_redirects=False,  # followed by hand: same origin only, credentials checked
            transport=transport,
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- quota, refusals, holds ---------------------------------------------------------------
    def quota_used_today(self) -> int:
        """Today's count as this client last saw it (at hub entry, plus its own calls)."""
        return self._used

    def quota_left(self) -> int | None:
        limit = self.eff.daily_quota
        if limit is None:
            return None
        if self._quota.lost is not None:
            return 0
        return max(0, limit - self._used)

    def held(self) -> ServiceHold | None:
        """The hold in force (this process's or another's, as last read), if any."""
        hold = self._hold
        return hold if hold is not None and hold.until > self._clock() else None

    async def load_view(self) -> None:
        """Read today's count and the flags in force from the coordination (at hub entry)."""
        try:
            self._used = max(self._used, await self.coord.quota.used_today(self.scope))
        except _STATE_FAULTS as exc:
            log.warning("%s: today's shared count unreadable (%s)", self.name, type(exc).__name__)
        await self._read_flags()

    async def _read_flags(self) -> None:
        try:
            flags = await self.coord.flags.active(self.scope, (*HOLDS, CIRCUIT_OPEN))
        except _STATE_FAULTS as exc:
            log.warning("%s: shared holds unreadable (%s)", self.name, type(exc).__name__)
            return
        now = self._clock()
        holds = [f for kind, f in flags.items() if kind in HOLDS]
        if holds:
            flag = max(holds, key=lambda f: f.remaining)
            mine = self._hold
            until = now + timedelta(seconds=flag.remaining)
            if mine is None or mine.reason != flag.kind or mine.until < until:
                self._hold = ServiceHold(flag.kind, flag.reason, until)
        self._open_elsewhere = flags.get(CIRCUIT_OPEN)

    async def check_quota(self, request: ServiceRequest) -> None:
        """Fail fast (no network) when the service refused for this run, is held or its breaker
        is open in any process sharing the coordination, or is spent for this run or today."""
        if self.refused is not None:
            raise self._replay(self.refused)
        await self._read_flags()
        hold = self.held()
        if hold is not None:
            raise self._held_error(hold, request)
        elsewhere = self._open_elsewhere
        if elsewhere is not None and self.breaker.state is BreakerState.CLOSED:
            error = CircuitOpen(
                self.name,
                f"circuit breaker opened by another tradescout process ({elsewhere.reason}); "
                f"failing fast for {elsewhere.remaining:.0f}s more",
                dataset=request.dataset,
            )
            error.replayed = True
            raise error
        if self.exhausted_for_run is not None:
            raise QuotaExhausted(self.name, self.exhausted_for_run, dataset=request.dataset)
        left = self.quota_left()
        if left is not None and left <= 0:
            self.exhausted_for_run = (
                self._quota.lost or f"daily quota of {self.eff.daily_quota} calls used up"
            )
            raise QuotaExhausted(self.name, self.exhausted_for_run, dataset=request.dataset)

    def _held_error(self, hold: ServiceHold, request: ServiceRequest) -> ServiceError:
        cls = _HELD_ERRORS.get(hold.reason, BadResponse)
        detail = f"{hold.detail}; not asking again before {hold.until:%Y-%m-%d %H:%M} UTC"
        error = cls(self.name, detail, dataset=request.dataset)
        error.replayed = True
        return error

    @staticmethod
    def _replay(refusal: ServiceError) -> ServiceError:
        error = refusal.with_detail(f"{refusal.detail} (refused earlier this run)")
        error.replayed = True
        return error

    def _check_hold_now(self, request: ServiceRequest) -> None:
        """Right before sending: a hold another request of this run just recorded."""
        if self.refused is not None:
            raise self._replay(self.refused)
        hold = self._hold
        if hold is not None and hold.until > self._clock():
            raise self._held_error(hold, request)

    async def _remember(self, exc: ServiceError) -> None:
        """What a refusal means beyond this request (see services/errors.py)."""
        if exc.replayed:
            return
        if exc.stops_run and self.refused is None:
            self.refused = exc
        if exc.hold is None:
            return
        now = self._clock()
        if exc.hold == "utc_day":
            until = next_utc_midnight(now)
        else:
            until = now + timedelta(seconds=self.eff.blocked_cooldown_seconds)
            self.breaker.trip(self.eff.blocked_cooldown_seconds)
        self._hold = ServiceHold(exc.reason, exc.detail, until)
        seconds = (until - now).total_seconds()
        if seconds <= 0:
            return
        try:  # a damaged state/ must not turn a gap into a crash (the run still holds it)
            await self.coord.flags.raise_for(self.scope, exc.reason, seconds, exc.detail)
        except _STATE_FAULTS as exc2:
            log.warning("%s: hold not saved (%s)", self.name, type(exc2).__name__)

    async def _failure(self) -> None:
        """Count a failure; when it opens the breaker, every process sharing the coordination
        fails fast too until the breaker's reset time."""
        opened = self.breaker.times_opened
        self.breaker.failure()
        if self.breaker.times_opened == opened:
            return
        try:
            await self.coord.flags.raise_for(
                self.scope,
                CIRCUIT_OPEN,
                self.breaker.reset_seconds,
                f"{self.breaker.threshold} failures in a row",
            )
        except _STATE_FAULTS as exc:
            log.warning("%s: open breaker not shared (%s)", self.name, type(exc).__name__)

    async def _reserve(self, request: ServiceRequest) -> None:
        """Count this attempt against today's quota (atomically across processes)."""
        try:
            granted = await self.coord.quota.try_reserve(self.scope, self.eff.daily_quota)
        except _STATE_FAULTS as exc:
            log.warning("%s: quota not countable (%s)", self.name, type(exc).__name__)
            granted = self.eff.daily_quota is None
        if not granted:
            raise QuotaExhausted(
                self.name,
                self._quota.lost or f"daily quota of {self.eff.daily_quota} calls used up",
                dataset=request.dataset,
            )
        self._used += 1

    # -- the network path ------------------------------------------------------------------------
    async def request(self, request: ServiceRequest) -> Answer:
        """Fetch one request from the network with retries; raises typed ServiceErrors."""
        if self._http is None:
            await self.open()  # lazily: a service a run never calls costs no pool (or TLS setup)
        try:
            return await self._request(request)
        except ServiceError as exc:
            if isinstance(exc, QuotaExhausted):
                self.exhausted_for_run = exc.detail
            await self._remember(exc)
            raise

    async def _request(self, request: ServiceRequest) -> Answer:
        await self.check_quota(request)
        if not self.breaker.would_admit():
            self.breaker.admit()  # raises CircuitOpen without waiting for the limiter
        while True:
            generation = await self._ensure_session(request) if self.session else 0
            try:
                return await self._with_retries(request)
            except SessionRefused as exc:
                if not self.session.invalidate(generation):
                    raise Blocked(
                        self.name, f"{exc.detail}, again after renewing the session"
                    ) from None
                log.info("%s: session refused; renewing it once", self.name)

    async def _ensure_session(self, request: ServiceRequest) -> int:
        """The session, set up with the same retries as data (a dropped cookie request is
        transient; a block or a consent wall is not)."""
        generation: int = await self._controller(request)(self.session.ensure, self._session_get)
        return generation

    async def _with_retries(self, request: ServiceRequest) -> Answer:
        answer: Answer = await self._controller(request)(self._attempt, request)
        return answer

    def _controller(self, request: ServiceRequest) -> Any:
        from services.retry import retrying  # the retry machinery: only once a request is sent

        def count_retry(state: RetryCallState) -> None:
            self.usage.retries += 1
            exc = state.outcome.exception() if state.outcome is not None else None
            log.info(
                "%s: retrying %s in %.2fs after %s",
                self.name,
                describe(request),
                state.upcoming_sleep,
                exc.__class__.__name__ if exc else "failure",
            )

        return retrying(
            max_attempts=self.spec.max_attempts,
            max_total_delay=self.spec.max_retry_delay_seconds,
            backoff_base=self.spec.backoff_base_seconds,
            backoff_max=self.spec.backoff_max_seconds,
            sleep=self._sleep,
            before_sleep=count_retry,
        )

    def _limiter_for_run(self) -> Any:
        return self.coord.limiter(self.scope, self.eff.rate_per_second)

    async def _attempt(self, request: ServiceRequest) -> Answer:
        """One attempt: the ceiling slot first, then the quota, then the pacing slot — so the
        request goes out right after its slot (nothing to wait for between them)."""
        async with self._semaphore, self._ceiling.slot():
            self._check_hold_now(request)
            if not self.breaker.would_admit():
                self.breaker.admit()  # raises CircuitOpen before a quota count or a slot
            await self._reserve(request)
            await self._limiter_for_run().acquire()
            return await self._send_once(request)

    async def _send_once(self, request: ServiceRequest) -> Answer:
        self._check_hold_now(request)
        probe = self.breaker.admit()  # raises CircuitOpen
        settled = False
        try:
            self.usage.network_requests += 1
            raw, failure = await self._get(request)
            if failure is not None or raw is None:
                if failure is None or isinstance(failure, (TransientFailure, TooSlow)):
                    await self._failure()  # down, silent or trickling: the breaker counts it
                else:
                    self.breaker.success()  # it answered (a refusal, a cap), just not usably
                settled = True
                raise failure or TransientFailure(self.name, "no response")
            if raw.status >= 500:
                await self._failure()
                settled = True
                raise TransientFailure(
                    self.name,
                    f"HTTP {raw.status} for {describe(request)}",
                    dataset=request.dataset,
                    status_code=raw.status,
                )
            self.breaker.success()  # any other answer proves the service is up
            settled = True
            return self._judge(request, raw)
        finally:
            if not settled:
                self.breaker.release(probe)

    def _outgoing(self, request: ServiceRequest) -> tuple[str, dict[str, str], dict[str, str]]:
        """URL, params and headers of the real request: the only place a credential is added."""
        url = self.eff.base_url(request.host) + request.path
        params = dict(request.params)
        headers: dict[str, str] = {}
        cred = self.eff.credential_spec
        credential = self.eff.credential
        if cred is not None and credential is not None:
            if cred.placement == "query":
                params[cred.name] = credential
            else:
                headers[cred.name] = credential
        if self.session is not None:
            self.session.apply(params, headers)
        return url, params, headers

    def _largest_cap(self) -> int:
        caps = [d.max_bytes for d in self.spec.datasets.values() if d.max_bytes is not None]
        return max([self.spec.max_body_bytes, *caps])

    def _max_bytes(self, request: ServiceRequest) -> int:
        dataset = self.spec.datasets.get(request.dataset)
        cap = dataset.max_bytes if dataset is not None else None
        return cap if cap is not None else self.spec.max_body_bytes

    async def _get(self, request: ServiceRequest) -> tuple[_Raw | None, ServiceError | None]:
        url, params, headers = self._outgoing(request)
        started = time.perf_counter()
        message: str | None = None
        failure: ServiceError | None = None
        raw: _Raw | None = None
        try:
            raw = await self._exchange(url, params, headers, self._max_bytes(request), request)
        except ServiceError as exc:  # a refusal found in a redirect, or a cap
            failure = exc
        except httpx.TimeoutException as exc:
            message = (
                f"{_timeout_kind(exc)} after {self.eff.timeout_seconds:g}s: {describe(request)}"
            )
        except httpx.HTTPError as exc:  # connect/read errors, dropped connections, protocol errors
            message = f"transport error ({exc.__class__.__name__}): {describe(request)}"
        finally:
            self.usage.latencies_ms.append((time.perf_counter() - started) * 1000.0)
        if message is not None:  # raised outside the except: no httpx exception (URL!) chained
            return None, TransientFailure(self.name, message, dataset=request.dataset)
        if failure is not None:
            return None, failure
        assert raw is not None
        log.debug("%s: %s -> HTTP %s", self.name, describe(request), raw.status)
        return raw, None

    async def _session_get(
        self, url: str, headers: Mapping[str, str], max_bytes: int
    ) -> tuple[int, httpx.Headers, bytes]:
        """A session set-up request (Yahoo's cookie and crumb): limiter, deadline and size cap
        as for data, redirects not followed, transport failures as TransientFailure."""
        if self._http is None:
            await self.open()
        async with self._semaphore:
            await self._limiter_for_run().acquire()
            failure: ServiceError | None = None
            try:
                raw = await self._exchange(url, {}, dict(headers), max_bytes, None)
                return raw.status, raw.headers, raw.body
            except ServiceError as exc:
                failure = exc
            except httpx.HTTPError as exc:
                failure = TransientFailure(
                    self.name, f"transport error ({exc.__class__.__name__}) setting up a session"
                )
            await self._failure()
            raise failure

    async def _exchange(
        self,
        url: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        max_bytes: int,
        request: ServiceRequest | None,
    ) -> _Raw:
        """One GET under a single deadline: redirects followed by hand (same origin only, at
        most `max_redirects`; the service's refusal rule sees each one first — Yahoo's consent
        redirect), the decoded body streamed into a capped buffer. A data request's redirect is
        followed; a session request's is returned as is."""
        assert self._http is not None
        what = describe(request) if request is not None else "a session request"
        dataset = request.dataset if request is not None else None
        deadline = self.deadline_seconds
        try:
            async with asyncio.timeout(deadline):
                target = self._http.build_request("GET", url, params=params, headers=headers)
                origin = _origin(target.url)
                for _hop in range(self.spec.max_redirects + 1):
                    response = await self._http.send(target, stream=True)
                    try:
                        if not (response.is_redirect and request is not None):
                            body = await self._read_body(response, max_bytes)
                            return _Raw(response.status_code, response.headers, body)
                        self._refusal_of(request, response.status_code, response.headers, None)
                        location = response.headers.get("location", "")
                        next_url = target.url.join(location)
                    finally:
                        await _close(response)
                    if _origin(next_url) != origin:
                        raise BadResponse(
                            self.name,
                            f"redirected to another origin ({_origin_label(next_url)}) for "
                            f"{what}: refused, nothing sent there",
                            dataset=dataset,
                        )
                    target = self._http.build_request("GET", next_url, headers=headers)
                raise BadResponse(
                    self.name,
                    f"more than {self.spec.max_redirects} redirects for {what}",
                    dataset=dataset,
                )
        except TimeoutError:
            raise TooSlow(
                self.name,
                f"too slow: no complete answer within {deadline:g}s for {what}",
                dataset=dataset,
            ) from None
        except BodyTooLarge as exc:
            raise TooLarge(self.name, f"{exc} for {what}", dataset=dataset) from None
        except BodyMalformed as exc:
            raise MalformedBody(self.name, f"{exc} for {what}", dataset=dataset) from None

    @staticmethod
    async def _read_body(response: httpx.Response, max_bytes: int) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes and "curl" not in response.extensions:
            raise BodyTooLarge(f"too large: {int(declared):,} bytes declared, cap {max_bytes:,}")
        collector = Collector(max_bytes)
        if "curl" in response.extensions:  # curl decoded it already, in small chunks
            try:
                async for chunk in response.aiter_raw():
                    collector.add(chunk)
            except BodyTooLarge:
                raise
            except Exception as exc:  # curl's own errors mid-body (a cut connection, its cap)
                if not is_transport_error(exc):
                    raise
                if getattr(exc, "code", None) == CURLE_FILESIZE_EXCEEDED:
                    raise BodyTooLarge(f"too large: over {max_bytes:,} bytes") from None
                raise httpx.ReadError(f"transfer cut ({type(exc).__name__})") from None
            return collector.value()
        if response.is_stream_consumed:  # built in-process (httpx.MockTransport): no wire
            collector.add(response.content)
            return collector.value()
        inflater = Inflater(response.headers.get("content-encoding"))
        async for raw in response.aiter_raw():
            for chunk in inflater.feed(raw):
                collector.add(chunk)
        return collector.value()

    def _refusal_of(
        self, request: ServiceRequest, status: int, headers: httpx.Headers, body: Any
    ) -> None:
        """Raise the service's own refusal for this answer, if it is one."""
        rule = self.spec.refusal
        if rule is None:
            return
        refusal = rule(request, Reply(status, headers, body, _text(body)))
        if refusal is not None:
            raise self._scrubbed(refusal)

    def _judge(self, request: ServiceRequest, raw: _Raw) -> Answer:
        status = raw.status
        body: Any = None
        decode_error: ServiceError | None = None
        if raw.body and (200 <= status < 300 or looks_like_json(raw.body)):
            try:
                body = decode_json(raw.body)
            except BodyTooDeep as exc:
                decode_error = TooDeep(
                    self.name, f"{exc} for {describe(request)}", dataset=request.dataset
                )
            except BodyMalformed:
                if 200 <= status < 300:
                    decode_error = MalformedBody(
                        self.name,
                        f"malformed JSON for {describe(request)}",
                        dataset=request.dataset,
                    )
        if decode_error is not None:
            raise decode_error
        rule = self.spec.refusal
        if rule is not None:
            text = raw.body[:600].decode("utf-8", "replace")
            refusal = rule(request, Reply(status, raw.headers, body, text))
            if refusal is not None:
                raise self._scrubbed(refusal)
        if status == 429:
            self.usage.rate_limited += 1
            from services.retry import parse_retry_after

            wait = parse_retry_after(raw.headers.get("Retry-After"), self._clock())
            hint = f" (Retry-After {wait:g}s)" if wait is not None else ""
            raise RateLimitedAttempt(
                self.name,
                f"HTTP 429 for {describe(request)}{hint}",
                dataset=request.dataset,
                retry_after=wait,
            )
        if 200 <= status < 300 and body is None:
            raise MalformedBody(
                self.name, f"empty body for {describe(request)}", dataset=request.dataset
            )
        classify = self.spec.classify or default_verdict
        failure: ServiceError | None = None
        try:
            verdict = classify(request, status, body)
        except ServiceError as exc:
            failure = self._scrubbed(exc)
        if failure is not None:  # raised here, so no exception that saw the raw body is chained
            raise failure
        synthetic = raw.headers.get(SYNTHETIC_HEADER, "").strip().lower() == "true"
        secrets = self._secrets()
        if secrets and redact.contains(raw.body.decode("utf-8", "replace"), secrets):
            body = _masked(body, secrets)  # an echoed key: mask it (every form)
        return Answer(verdict=verdict, payload=body, synthetic=synthetic)

    def _secrets(self) -> tuple[str, ...]:
        """This service's secrets: its credential, and its session crumb if it has one."""
        credential = self.eff.credential
        crumb = self.session.crumb if self.session is not None else None
        return tuple(s for s in (credential, crumb) if s)

    def _scrubbed(self, exc: ServiceError) -> ServiceError:
        """The same error with every form of the credential masked, should an upstream body
        have echoed it into the message."""
        secrets = self._secrets()
        if not redact.contains(str(exc), secrets):
            return exc
        return exc.with_detail(redact.mask(exc.detail, secrets))


async def _close(response: httpx.Response) -> None:
    """Close a streamed response. curl's transfer runs on by itself until it ends (its close
    waits for it): an unfinished one is told to stop at its next chunk, and waited for briefly."""
    curl = response.extensions.get("curl", {}).get("response")
    if curl is None:
        await response.aclose()
        return
    quit_now = getattr(curl, "quit_now", None)
    if quit_now is not None:
        quit_now.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(response.aclose(), 1.0)


def _text(body: Any) -> str:
    return "" if body is None else str(body)[:600]


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default_port = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, (url.host or "").lower(), url.port or default_port)


def _origin_label(url: httpx.URL) -> str:
    """scheme://host[:port] only: the path and query of a hostile target are not echoed."""
    scheme, host, port = _origin(url)
    return f"{scheme}://{host[:60]}" + (f":{port}" if port else "")


def _masked(value: Any, secrets: tuple[str, ...]) -> Any:
    """A copy of a JSON value with every form of every secret in its strings replaced."""
    if isinstance(value, str):
        return redact.mask(value, secrets)
    if isinstance(value, list):
        return [_masked(v, secrets) for v in value]
    if isinstance(value, dict):
        return {_masked(k, secrets): _masked(v, secrets) for k, v in value.items()}
    return value


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    return {
        httpx.ConnectTimeout: "connect timeout",
        httpx.ReadTimeout: "read timeout",
        httpx.WriteTimeout: "write timeout",
        httpx.PoolTimeout: "pool timeout",
    }.get(type(exc), "timeout")
