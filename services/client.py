"""The shared resilient client: one upstream service's pool, limiter, breaker, quota and retries.

One `ServiceClient` per service; the hub owns them and the cache. A request's network path:

    per-service semaphore (≤ max_connections)          so gathered tasks never hit PoolTimeout
      → aiolimiter (no burst: 1 call per 1/rate s)     every attempt, retries included
        → global ceiling slot (hub, resizable)          taken last: a request queued behind a
                                                        slow service never holds a global slot
          → breaker admit (one probe when half-open)
            → daily quota reservation (SQLite)          every attempt is a call upstream counts
              → HTTP GET with the credential added now
    all inside a tenacity loop (429/5xx/timeouts/transport errors; Retry-After honoured),
    the semaphore and slot released while it sleeps.

The credential exists only in the outgoing request: it is never in a `ServiceRequest`, a log
line, an error message (httpx's own exceptions quote the URL, so messages are rebuilt from the
redacted request and raised outside the `except` that caught them) or an envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from aiolimiter import AsyncLimiter
from tenacity import RetryCallState

from services._common import default_verdict
from services.breaker import CircuitBreaker
from services.config import Effective
from services.errors import (
    MalformedBody,
    QuotaExhausted,
    RateLimitedAttempt,
    ServiceError,
    TransientFailure,
)
from services.quota import QuotaLedger
from services.retry import parse_retry_after, retrying
from services.spec import ServiceRequest, Verdict

log = logging.getLogger("tradescout.services")

USER_AGENT = "tradescout/0.1 (+local discovery tool)"
SYNTHETIC_HEADER = "X-Tradescout-Synthetic"
_SECRET_QUERY_RE = re.compile(
    r"(?i)\b(apikey|api_key|api-key|token|access_token|key|secret|password)=[^&\s\"']+"
)


class RedactingFilter(logging.Filter):
    """Masks credential query parameters in httpx's own request log lines ("HTTP Request: GET
    https://...?apikey=..."), which tradescout does not control otherwise."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose args do not format: leave it to logging
            return True
        cleaned = _SECRET_QUERY_RE.sub(lambda m: f"{m.group(1)}=***", message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


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


@dataclass
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


@dataclass(frozen=True)
class Answer:
    """A classified upstream answer, ready for the cache."""

    verdict: Verdict
    payload: Any
    synthetic: bool


class ServiceClient:
    """One service's network path (see the module docstring)."""

    def __init__(
        self,
        effective: Effective,
        *,
        quota: QuotaLedger,
        ceiling: Ceiling,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.eff = effective
        self.spec = effective.spec
        self.name = effective.name
        self.usage = ServiceUsage()
        self.breaker = CircuitBreaker(
            self.name,
            threshold=self.spec.breaker_threshold,
            reset_seconds=self.spec.breaker_reset_seconds,
            clock=clock,
        )
        self.exhausted_for_run: str | None = None  # why, once the service said "no more today"
        self._quota = quota
        self._ceiling = ceiling
        self._clock = clock
        self._sleep = sleep
        self._transport = transport
        self._semaphore = asyncio.Semaphore(effective.max_connections)
        # No-burst form: one call per 1/rate seconds, so no sliding window is ever exceeded.
        self._limiter = AsyncLimiter(1, 1.0 / effective.rate_per_second)
        self._http: httpx.AsyncClient | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        if self._http is not None:
            return
        timeout = self.eff.timeout_seconds
        self._http = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=self.eff.max_connections,
                max_keepalive_connections=self.eff.max_connections,
                keepalive_expiry=30.0,
            ),
            timeout=httpx.Timeout(
                connect=min(5.0, timeout), read=timeout, write=timeout, pool=timeout
            ),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=True,
            transport=self._transport,
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- quota -----------------------------------------------------------------------------------
    def quota_used_today(self) -> int:
        return self._quota.used_today(self.name, self.eff.upstream)

    def quota_left(self) -> int | None:
        return self._quota.left_today(self.name, self.eff.upstream, self.eff.daily_quota)

    def check_quota(self, request: ServiceRequest) -> None:
        """Fail fast (no network) when the service is spent for this run or for today."""
        if self.exhausted_for_run is not None:
            raise QuotaExhausted(self.name, self.exhausted_for_run, dataset=request.dataset)
        left = self.quota_left()
        if left is not None and left <= 0:
            self.exhausted_for_run = (
                self._quota.lost or f"daily quota of {self.eff.daily_quota} calls used up"
            )
            raise QuotaExhausted(self.name, self.exhausted_for_run, dataset=request.dataset)

    # -- the network path ------------------------------------------------------------------------
    async def request(self, request: ServiceRequest) -> Answer:
        """Fetch one request from the network with retries; raises typed ServiceErrors."""
        if self._http is None:
            await self.open()  # lazily: a service a run never calls costs no pool (or TLS setup)
        self.check_quota(request)
        if not self.breaker.would_admit():
            self.breaker.admit()  # raises CircuitOpen without waiting for the limiter

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

        controller = retrying(
            max_attempts=self.spec.max_attempts,
            max_total_delay=self.spec.max_retry_delay_seconds,
            backoff_base=self.spec.backoff_base_seconds,
            backoff_max=self.spec.backoff_max_seconds,
            sleep=self._sleep,
            before_sleep=count_retry,
        )
        try:
            answer: Answer = await controller(self._attempt, request)
        except QuotaExhausted as exc:
            self.exhausted_for_run = exc.detail
            raise
        return answer

    async def _attempt(self, request: ServiceRequest) -> Answer:
        async with self._semaphore:
            await self._limiter.acquire()
            async with self._ceiling.slot():
                return await self._send_once(request)

    async def _send_once(self, request: ServiceRequest) -> Answer:
        probe = self.breaker.admit()  # raises CircuitOpen
        settled = False
        try:
            if not self._quota.try_reserve(self.name, self.eff.upstream, self.eff.daily_quota):
                raise QuotaExhausted(
                    self.name,
                    self._quota.lost or f"daily quota of {self.eff.daily_quota} calls used up",
                    dataset=request.dataset,
                )
            self.usage.network_requests += 1
            response, failure = await self._get(request)
            if failure is not None or response is None:
                self.breaker.failure()
                settled = True
                raise failure or TransientFailure(self.name, "no response")
            if response.status_code >= 500:
                self.breaker.failure()
                settled = True
                raise TransientFailure(
                    self.name,
                    f"HTTP {response.status_code} for {describe(request)}",
                    dataset=request.dataset,
                    status_code=response.status_code,
                )
            self.breaker.success()  # any other answer proves the service is up
            settled = True
            return self._judge(request, response)
        finally:
            if not settled:
                self.breaker.release(probe)

    async def _get(
        self, request: ServiceRequest
    ) -> tuple[httpx.Response | None, TransientFailure | None]:
        assert self._http is not None
        url = self.eff.base_url(request.host) + request.path
        params = dict(request.params)
        headers: dict[str, str] = {}
        credential = self.eff.credential
        if credential is not None and self.spec.credential_name:
            if self.spec.credential_placement == "query":
                params[self.spec.credential_name] = credential
            elif self.spec.credential_placement == "header":
                headers[self.spec.credential_name] = credential
        started = time.perf_counter()
        message: str | None = None
        try:
            response = await self._http.get(url, params=params, headers=headers)
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
        log.debug("%s: %s -> HTTP %s", self.name, describe(request), response.status_code)
        return response, None

    def _judge(self, request: ServiceRequest, response: httpx.Response) -> Answer:
        status = response.status_code
        if status == 429:
            self.usage.rate_limited += 1
            wait = parse_retry_after(response.headers.get("Retry-After"), self._clock())
            hint = f" (Retry-After {wait:g}s)" if wait is not None else ""
            raise RateLimitedAttempt(
                self.name,
                f"HTTP 429 for {describe(request)}{hint}",
                dataset=request.dataset,
                retry_after=wait,
            )
        try:
            body: Any = json.loads(response.content) if response.content else None
            malformed = False
        except ValueError:  # includes UnicodeDecodeError
            body, malformed = None, True
        if malformed and 200 <= status < 300:
            raise MalformedBody(
                self.name, f"malformed JSON for {describe(request)}", dataset=request.dataset
            )
        classify = self.spec.classify or default_verdict
        failure: ServiceError | None = None
        try:
            verdict = classify(request, status, body)
        except ServiceError as exc:
            failure = self._scrubbed(exc)
        if failure is not None:  # raised here, so no exception that saw the raw body is chained
            raise failure
        synthetic = response.headers.get(SYNTHETIC_HEADER, "").strip().lower() == "true"
        credential = self.eff.credential
        if credential and credential.encode() in response.content:  # an echoed key: mask it
            body = _masked(body, credential)
        return Answer(verdict=verdict, payload=body, synthetic=synthetic)

    def _scrubbed(self, exc: ServiceError) -> ServiceError:
        """The same error with the credential masked, should an upstream body have echoed it."""
        credential = self.eff.credential
        if not credential or credential not in str(exc):
            return exc
        clean = type(exc)(self.name, exc.detail.replace(credential, "***"), dataset=exc.dataset)
        return clean


def _masked(value: Any, secret: str) -> Any:
    """A copy of a JSON value with every occurrence of `secret` in its strings replaced."""
    if isinstance(value, str):
        return value.replace(secret, "***")
    if isinstance(value, list):
        return [_masked(v, secret) for v in value]
    if isinstance(value, dict):
        return {_masked(k, secret): _masked(v, secret) for k, v in value.items()}
    return value


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    return {
        httpx.ConnectTimeout: "connect timeout",
        httpx.ReadTimeout: "read timeout",
        httpx.WriteTimeout: "write timeout",
        httpx.PoolTimeout: "pool timeout",
    }.get(type(exc), "timeout")
