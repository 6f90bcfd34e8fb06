"""Declarative service descriptions: what a service module states, what the shared client runs.

A service module (yahoo_finance.py, fmp.py, ...) declares a `ServiceSpec` (its datasets and TTLs,
default base URL, limits, credential placement), pure request builders returning
`ServiceRequest`, and pure parsers from the real payload shape to typed records — the shape of a
provider "fetcher": query → extract → transform. All I/O is the shared client's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import field
from datetime import datetime, timedelta
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, Literal

from cache.keys import derive_key, under_upstream
from services.recordclass import record

if TYPE_CHECKING:
    from services.errors import ServiceError

TtlRule = Callable[[datetime], timedelta]
"""A TTL that depends on the time of writing (e.g. "until the next market close")."""

CredentialPlacement = Literal["query", "header"]


@record
class Credential:
    """One kind of key or identity a service takes: the variable it is read from, where it goes
    in a request, and — for a key that belongs to another host (CoinGecko's pro key) — that
    host's base URL (a configured base URL still wins). The services' declarations are the one
    table of credential variables (settings reads it from the registry)."""

    env: str
    placement: CredentialPlacement
    name: str  # query parameter or header name
    host: str | None = None


Verdict = Literal["ok", "negative"]

ResponseClassifier = Callable[["ServiceRequest", int, Any], Verdict]
"""A service's judgement of one non-5xx, non-429 HTTP answer: `(request, status, body)` → "ok"
(cache and return it) or "negative" (the service does not know the subject), or raise a typed
`ServiceError` (BadResponse, QuotaExhausted). `body` is the decoded JSON, or None when the body is
not JSON (a 2xx that is not JSON never reaches the classifier: it is a BadResponse)."""


@record
class Reply:
    """One HTTP answer as a refusal rule sees it (every status, redirects included)."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (httpx.Headers)
    body: Any  # the decoded JSON, or None when the body is not JSON (or was not read: 3xx)
    text: str  # the body's first characters, decoded leniently (refusals are often not JSON)


RefusalRule = Callable[["ServiceRequest", Reply], "ServiceError | None"]
"""A service's own refusals, recognised by status *and* the service's message (SEC's two 403s,
FMP's 401/402/429, Alpha Vantage's HTTP-200 `Error Message`/`Information`, Yahoo's bot 429):
the typed error to raise, or None for "not a refusal, classify it as usual". Runs before the
generic 429 handling and before `classify`; a refusal is never retried."""


@record
class DatasetSpec:
    name: str
    ttl: timedelta | TtlRule
    negative_ttl: timedelta = timedelta(hours=6)
    max_bytes: int | None = None  # the decoded-size cap of one answer (None: the service's)

    def ttl_at(self, now: datetime) -> timedelta:
        return self.ttl if isinstance(self.ttl, timedelta) else self.ttl(now)


@record
class ServiceSpec:
    """What the shared client needs to know about one upstream service."""

    name: str
    default_base_urls: Mapping[str, str]  # host role -> URL; most services have only "default"
    datasets: Mapping[str, DatasetSpec]
    rate_per_second: float  # at or under the published limit
    rate_burst: int = 1  # 1 = the no-burst form for hard windows
    daily_quota: int | None = None
    max_connections: int = 4
    timeout_seconds: float = 10.0
    # In order of precedence: the first one set wins (CoinGecko: pro key, then demo key). A
    # config that names none uses the first without a `host` (the service's basic kind).
    credentials: tuple[Credential, ...] = ()
    credential_required: bool = False
    # --- additions for the shared client (all defaulted, so existing constructions still work)
    classify: ResponseClassifier | None = field(default=None, compare=False, repr=False)
    refusal: RefusalRule | None = field(default=None, compare=False, repr=False)
    # A browser-impersonating TLS client for this service (curl_cffi's target, e.g. "chrome")
    # and the session it needs before data requests (Yahoo: cookie + crumb).
    impersonate: str | None = None
    session: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    max_attempts: int = 4  # attempts per request, the first included
    max_retry_delay_seconds: float = 30.0  # total backoff budget per request
    backoff_base_seconds: float = 0.5  # full-jitter exponential: uniform(0, base * 2**n)
    backoff_max_seconds: float = 8.0
    breaker_threshold: int = 5  # consecutive 5xx/timeouts/connect errors that open the breaker
    breaker_reset_seconds: float = 30.0  # open → half-open after this long
    blocked_cooldown_seconds: float = 900.0  # how long a "cooldown" refusal keeps us away
    max_body_bytes: int = 4 << 20  # decoded-size cap of one answer (datasets may set their own)
    max_redirects: int = 5  # same-origin hops followed; another origin is refused
    # `tradescout doctor`'s canary: the cheapest request that proves the service answers this
    # client (key, identity, session) — one of its own datasets, never cached.
    probe: Callable[[], ServiceRequest] | None = field(default=None, compare=False, repr=False)

    def credential(self, env: str | None) -> Credential | None:
        """The declared credential read from `env` (None: the basic kind)."""
        for cred in self.credentials:
            if (env is None and cred.host is None) or cred.env == env:
                return cred
        return None


@record
class ServiceRequest:
    """One HTTP GET, described as data. `params` never contain the credential: the client adds
    it at send time, so it cannot leak into keys, logs or reports."""

    service: str
    dataset: str
    path: str  # relative to the base URL of `host`
    params: Mapping[str, str] = field(default_factory=dict)
    host: str = "default"
    subjects: tuple[str, ...] = ()  # the tickers / series / coins this request answers

    def cache_key(self, upstream: str = "live") -> str:
        """The request's cache key: derived from dataset + path + public params only."""
        return under_upstream(self._live_key, upstream)

    @cached_property
    def _live_key(self) -> str:
        """Kept on the request (a run asks a request's key a dozen times: plan, fetch, parse,
        assembly); the memo below shares a derivation between equal requests."""
        try:
            return _key_of(self.service, self.dataset, self.path, tuple(self.params.items()))
        except TypeError:  # an unhashable param value: derived without the memo
            return _derive(self.service, self.dataset, self.path, self.params)


def _derive(service: str, dataset: str, path: str, params: Mapping[str, str]) -> str:
    return derive_key(service, dataset, {"_path": path, **params})


@lru_cache(maxsize=16_384)
def _key_of(service: str, dataset: str, path: str, params: tuple[tuple[str, str], ...]) -> str:
    """Memoized: a run asks each request's key several times (plan, fetch, assembly), and
    deriving one (sorting, quoting, maybe hashing the params) is the planner's main cost. The
    upstream's prefix is added after, so the live and the sandbox key share one derivation."""
    return _derive(service, dataset, path, dict(params))


Origin = Literal["cache", "network", "stale"]


@record
class FetchResult:
    """What the client hands back: the payload (ok) or a cached negative, and its provenance."""

    request: ServiceRequest
    status: Literal["ok", "negative"]
    payload: Any
    origin: Origin
    fetched_at: datetime
    expires_at: datetime
    synthetic: bool = False
