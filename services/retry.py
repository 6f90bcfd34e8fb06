"""Retry policy: what is retried, how long to wait, when to give up (tenacity pieces).

Retried: 429, every `TransientFailure` (5xx, read timeouts, transport errors) and — once — a 2xx
whose body is not JSON (`MalformedBody`: a truncated transfer; a service that keeps sending
garbage is not asked a third time). Never: refusals, other 4xx, payloads of the wrong shape,
quota signals, an open breaker, a cap (too large / too deep / too slow). Waits are full-jitter
exponential (`wait_random_exponential`), raised to at least the server's `Retry-After`. Attempts
are bounded, and so is the total planned wait: a wait that would exceed the budget stops the
retries at once (a `Retry-After: 3600` is not slept on; the caller may serve a stale entry).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # tenacity (and the tornado it probes for) loads with the first request: a warm run sends none.
    from tenacity import AsyncRetrying, RetryCallState

from services.errors import CircuitOpen, MalformedBody, RateLimitedAttempt, TransientFailure


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


MALFORMED_ATTEMPTS = 2  # a malformed body is asked for at most twice


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, CircuitOpen):
        return False
    return isinstance(exc, (TransientFailure, RateLimitedAttempt, MalformedBody))


def _should_retry(state: RetryCallState) -> bool:
    exc = state.outcome.exception() if state.outcome is not None else None
    if exc is None or not is_retryable(exc):
        return False
    return not (isinstance(exc, MalformedBody) and state.attempt_number >= MALFORMED_ATTEMPTS)


class _Wait:
    """Full jitter, but never less than what the server asked for."""

    def __init__(self, base: float, cap: float) -> None:
        from tenacity import wait_random_exponential

        self._jitter = wait_random_exponential(multiplier=base, max=cap)

    def __call__(self, state: RetryCallState) -> float:
        wait = float(self._jitter(state))
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = getattr(exc, "retry_after", None)
        if isinstance(asked, (int, float)):
            wait = max(wait, float(asked))
        return wait


class _Stop:
    """Stop after `max_attempts`, or when the next wait would overrun the total delay budget."""

    def __init__(self, max_attempts: int, max_total_delay: float) -> None:
        self.max_attempts = max_attempts
        self.max_total_delay = max_total_delay

    def __call__(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.max_attempts:
            return True
        return state.idle_for + state.upcoming_sleep > self.max_total_delay


def retrying(
    *,
    max_attempts: int,
    max_total_delay: float,
    backoff_base: float,
    backoff_max: float,
    sleep: Callable[[float], Awaitable[None]],
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> AsyncRetrying:
    """A tenacity controller for one request; the injected `sleep` makes waits testable."""
    from tenacity import AsyncRetrying

    return AsyncRetrying(
        sleep=sleep,
        stop=_Stop(max(1, max_attempts), max_total_delay),
        wait=_Wait(backoff_base, backoff_max),
        retry=_should_retry,
        before_sleep=before_sleep,
        reraise=True,
    )
