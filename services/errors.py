"""Typed service errors. The pipeline turns every one of them into a gap; none crashes a run.

Messages never contain credentials: they are built from the redacted request only.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: something kept a service from answering this request."""

    reason = "error"

    def __init__(self, service: str, message: str, *, dataset: str | None = None) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.dataset = dataset
        self.detail = message


class NotConfigured(ServiceError):
    """The service needs a key or identity that is not set: it is skipped, never called."""

    reason = "not_configured"


class ServiceUnavailable(ServiceError):
    """5xx, timeouts or transport errors after the retries, or an upstream that is down."""

    reason = "unavailable"


class CircuitOpen(ServiceUnavailable):
    """The breaker is open: the call failed fast without touching the network."""

    reason = "circuit_open"


class RateLimited(ServiceUnavailable):
    """429s outlasted the retry budget."""

    reason = "rate_limited"


class QuotaExhausted(ServiceError):
    """The daily quota (ours, or the service's own signal such as Alpha Vantage's Note)."""

    reason = "quota_exhausted"


class NotFound(ServiceError):
    """The service does not know this symbol/series (cached as a negative result)."""

    reason = "not_found"


class BadResponse(ServiceError):
    """A 4xx other than 404/429, malformed JSON, or a payload of the wrong shape."""

    reason = "bad_response"


class OfflineMode(ServiceError):
    """`--offline`: no network at all; what the cache lacks is a gap."""

    reason = "offline"


# --- additions for the shared client (additive: the names above keep their meaning) -------------


class TransientFailure(ServiceUnavailable):
    """One attempt failed in a way worth retrying and counted by the breaker: a 5xx answer, a
    timeout or a transport error. Raised (after the retries) as a ServiceUnavailable."""

    reason = "unavailable"

    def __init__(
        self,
        service: str,
        message: str,
        *,
        dataset: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(service, message, dataset=dataset)
        self.status_code = status_code


class RateLimitedAttempt(RateLimited):
    """One 429 answer; `retry_after` is the server's requested wait in seconds (if it gave one)."""

    def __init__(
        self,
        service: str,
        message: str,
        *,
        dataset: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(service, message, dataset=dataset)
        self.retry_after = retry_after


class MalformedBody(BadResponse):
    """A 2xx answer whose body is not JSON (typically truncated in transit): retried like a
    transient failure, a BadResponse if it persists. Not counted by the breaker (it answered)."""
