"""Typed service errors. The pipeline turns every one of them into a gap; none crashes a run.

Each class's `reason` is one of `services.reasons.REASONS` (its kind and fix live there). Two
class attributes tell the client what a refusal means beyond this request:
  * `stops_run`: every later request of this run to the service would meet the same refusal
    (a refused key, an undeclared identity, a consent wall), so it fails fast without a request;
  * `hold`: the refusal is remembered in `state/` across runs — `"cooldown"` for the service's
    `blocked_cooldown_seconds` (Yahoo's bot block, SEC's rate block), `"utc_day"` until the next
    UTC midnight (a daily quota the service itself declared spent).
None of these is ever retried. Messages never contain credentials: they are built from the
redacted request only.
"""

from __future__ import annotations

from typing import Literal

Hold = Literal["cooldown", "utc_day"]


class ServiceError(Exception):
    """Base class: something kept a service from answering this request."""

    reason = "unavailable"
    stops_run = False
    hold: Hold | None = None
    replayed = False  # raised from a remembered refusal, without a request: not re-remembered

    def __init__(self, service: str, message: str, *, dataset: str | None = None) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.dataset = dataset
        self.detail = message

    def with_detail(self, detail: str) -> ServiceError:
        """The same error (class and attributes) with another detail (e.g. a key masked)."""
        clone = self.__class__.__new__(self.__class__)
        clone.__dict__.update(self.__dict__)
        Exception.__init__(clone, f"{self.service}: {detail}")
        clone.detail = detail
        return clone


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
    """The daily quota (ours, or the service's own signal such as Alpha Vantage's Note).
    `hold="utc_day"` when the service declared its daily limit spent (FMP "Limit Reach", Alpha
    Vantage `Information`): later runs that UTC day do not call it."""

    reason = "quota_exhausted"

    def __init__(
        self,
        service: str,
        message: str,
        *,
        dataset: str | None = None,
        hold: Hold | None = None,
    ) -> None:
        super().__init__(service, message, dataset=dataset)
        self.hold = hold


class NotFound(ServiceError):
    """The service does not know this symbol/series (cached as a negative result)."""

    reason = "not_found"


class BadResponse(ServiceError):
    """A 4xx other than 404/429, malformed JSON, or a payload of the wrong shape."""

    reason = "bad_response"


class TooLarge(BadResponse):
    """The decoded body passed the dataset's size cap while streaming: the transfer was cut."""


class TooDeep(BadResponse):
    """The JSON nests deeper than the decoder accepts (never a RecursionError)."""


class TooSlow(BadResponse):
    """The whole request (connect + headers + body) overran its deadline: a trickling service.
    Counted by the breaker, never retried."""


class BadCredential(ServiceError):
    """The service refused the key (FMP 401, Alpha Vantage "apikey is invalid", FRED "api_key is
    not registered", CoinGecko 401): every other request would be refused too."""

    reason = "bad_credential"
    stops_run = True


class BadIdentity(ServiceError):
    """SEC 403 "Undeclared Automated Tool": the User-Agent does not declare a name and e-mail."""

    reason = "bad_identity"
    stops_run = True


class RateBlocked(ServiceError):
    """SEC 403 "Request Rate Threshold Exceeded": SEC blocks the client for about 10 minutes and
    knocking again extends the block, so no SEC request is sent until the cool-down ends."""

    reason = "rate_blocked"
    hold = "cooldown"


class PlanLimited(ServiceError):
    """FMP 402: the symbol is outside the plan. The caller tries its fallback (Alpha Vantage);
    the hub remembers the refusal as a short negative entry so the next run goes there first."""

    reason = "plan_limited"


class Blocked(ServiceError):
    """Yahoo took the client for a bot (429 without Retry-After, a crumb answer that is not a
    crumb): retrying makes it worse, so Yahoo is left alone for its cool-down."""

    reason = "blocked"
    hold = "cooldown"


class SessionRefused(ServiceError):
    """Yahoo refused the session a request carried (401 / "Invalid Crumb"): the client renews
    the session once and asks again; refused again, it is `Blocked`. Never leaves the client."""

    reason = "blocked"


class ConsentRequired(ServiceError):
    """Yahoo redirected to its (EU) consent page: never followed, never parsed as data."""

    reason = "consent_required"
    stops_run = True


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
