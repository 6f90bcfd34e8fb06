"""The limits the sandbox enforces, the way the real services do.

Sliding windows (not token buckets): at most `limit` admitted requests in any `seconds`-long
window, so a client that paces itself correctly never sees a 429 while a burst always does.
Only admitted requests occupy the window (a rejected one does not prolong the penalty). Alpha
Vantage does not answer 429: its per-minute excess gets HTTP 200 `Note`, and past its daily quota
(per UTC day of the injected clock) HTTP 200 `Information`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: float


RATE_LIMITS: dict[str, Window] = {
    "yahoo_finance": Window(5, 1.0),
    "fmp": Window(5, 1.0),
    "alpha_vantage": Window(5, 60.0),
    "sec_edgar": Window(10, 1.0),
    "fred": Window(2, 1.0),
    "coingecko": Window(30, 60.0),
    "imf": Window(5, 1.0),
}
DAILY_QUOTAS: dict[str, int] = {"alpha_vantage": 25}
THROTTLE_WITH_BODY = frozenset({"alpha_vantage"})
"""Services that signal their limits with an HTTP 200 body instead of 429."""

Verdict = Literal["ok", "rate_limited", "note", "information"]


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    retry_after: int = 0  # whole seconds until a request would be admitted (rate_limited only)


class SlidingWindow:
    """Timestamps of the admitted requests still inside the window."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self._hits: deque[float] = deque()

    def wait_needed(self, now: float) -> float:
        """0 when a request may go now, else the seconds until the oldest hit leaves."""
        horizon = now - self.window.seconds
        while self._hits and self._hits[0] <= horizon:
            self._hits.popleft()
        if len(self._hits) < self.window.limit:
            return 0.0
        return self._hits[0] - horizon

    def record(self, now: float) -> None:
        self._hits.append(now)


class Limits:
    """Per-service windows and daily quotas; one instance per sandbox app (event-loop thread)."""

    def __init__(
        self,
        windows: Mapping[str, Window] | None = None,
        daily: Mapping[str, int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._windows_spec = dict(RATE_LIMITS if windows is None else windows)
        self._daily_spec = dict(DAILY_QUOTAS if daily is None else daily)
        self._monotonic = monotonic
        self.reset()

    def reset(self) -> None:
        self._windows = {name: SlidingWindow(w) for name, w in self._windows_spec.items()}
        self._used: dict[tuple[str, date], int] = {}

    def admit(self, service: str, day: date) -> Admission:
        """Decide one request to `service` on UTC `day`, recording it when admitted."""
        quota = self._daily_spec.get(service)
        if quota is not None and self._used.get((service, day), 0) >= quota:
            if service in THROTTLE_WITH_BODY:
                return Admission("information")
            return Admission("rate_limited", 3600)
        window = self._windows.get(service)
        now = self._monotonic()
        if window is not None:
            wait = window.wait_needed(now)
            if wait > 0:
                if service in THROTTLE_WITH_BODY:
                    return Admission("note", max(1, math.ceil(wait)))
                return Admission("rate_limited", max(1, math.ceil(wait)))
            window.record(now)
        if quota is not None:
            self._used[(service, day)] = self._used.get((service, day), 0) + 1
        return Admission("ok")

    def quota_used(self, service: str, day: date) -> int:
        return self._used.get((service, day), 0)
