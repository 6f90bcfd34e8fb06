"""A per-service circuit breaker: closed → open → half-open (one probe) → closed.

Why not purgatory (3.0.1, tried first, then dropped as a dependency): its model fits the idea
but not three of our requirements —
  * it reads `time.time()` directly in `OpenedState`, so the open → half-open transition cannot be
    driven by the injected clock the tests and the refresh scheduler use;
  * its `HalfOpenedState.handle_new_request` admits *every* request while half-open, so a burst of
    gathered tasks would all hit a service that just failed, where we need exactly one probe;
  * each call goes through an async unit of work and message bus (two awaits and several objects
    per request) for state we only keep in memory.
Its exclude-list (errors that must not count) would have worked. What we need is ~60 lines, so the
breaker lives here, with purgatory's vocabulary (threshold, ttl → `reset_seconds`).

What counts as a failure is the caller's decision (the shared client counts 5xx answers, timeouts
and connect/transport errors; any other HTTP answer — 2xx, 4xx, 429 — proves the service is up).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from services.errors import CircuitOpen


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open probe and an injectable clock."""

    def __init__(
        self,
        service: str,
        *,
        threshold: int = 5,
        reset_seconds: float = 30.0,
        clock: Callable[[], datetime],
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.service = service
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at: datetime | None = None
        self._probe_in_flight = False
        self._reset_override: float | None = None  # a trip's own cool-down
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        """The state as a caller would meet it now (an expired open reads as half-open)."""
        if self._state is BreakerState.OPEN and self._reset_due():
            return BreakerState.HALF_OPEN
        return self._state

    def _reset_due(self) -> bool:
        assert self._opened_at is not None
        wait = self.reset_seconds if self._reset_override is None else self._reset_override
        return (self._clock() - self._opened_at).total_seconds() >= wait

    def would_admit(self) -> bool:
        """A non-reserving look: would `admit()` let a call through now?"""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._probe_in_flight
        )

    def admit(self) -> bool:
        """Let a call through or raise CircuitOpen. Returns True when the call is the probe: the
        caller must then report exactly one of success / failure / release."""
        if self._state is BreakerState.OPEN and self._reset_due():
            self._state = BreakerState.HALF_OPEN
            self._probe_in_flight = False
        if self._state is BreakerState.CLOSED:
            return False
        if self._state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        raise CircuitOpen(self.service, "circuit breaker open: failing fast without a request")

    def success(self) -> None:
        self._failures = 0
        self._probe_in_flight = False
        self._state = BreakerState.CLOSED
        self._opened_at = None

    def failure(self) -> None:
        self._probe_in_flight = False
        if self._state is BreakerState.HALF_OPEN:
            self._open()
            return
        if self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.threshold:
                self._open()

    def release(self, probe: bool) -> None:
        """The admitted call ended without an answer that says anything (cancelled, quota)."""
        if probe:
            self._probe_in_flight = False

    def trip(self, seconds: float) -> None:
        """Open now for `seconds` (a refusal that says "stay away": Yahoo's bot block)."""
        self._open()
        self._reset_override = seconds

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._reset_override = None
        self._failures = 0
        self.times_opened += 1
