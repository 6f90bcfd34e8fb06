"""Yahoo's session: a cookie from `{fc}/`, then a crumb from `{query1}/v1/test/getcrumb`.

Yahoo answers data requests only inside a browser-like session (what yfinance does since 2023):
the cookie request sets `A3`, the crumb request (with that cookie) answers a short token, and
every chart request carries the cookie and `crumb=`. Both are kept in
`state/yahoo_session.{upstream}.json` (atomic write, mode 0600) for up to 24 h and reused across
runs; a run sets the session up at most once (one set-up in flight, however many requests wait
for it) and renews it at most once, when Yahoo refuses it (401 / "Invalid Crumb").

The crumb is a session secret: it is registered for log redaction and never enters a cache key,
a log line, an error message or a report (requests are described without it).

Refusals: a redirect to Yahoo's consent pages (guce.yahoo.com, consent.yahoo.com, a `/consent`
path) is `ConsentRequired`, never followed; a 429 or a crumb answer that is not a crumb
("Too Many Requests", HTML, empty) is `Blocked`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin, urlsplit

import orjson

from cache.atomic import atomic_write_bytes
from services import redact
from services.errors import Blocked, ConsentRequired, TransientFailure
from services.recordclass import record

if TYPE_CHECKING:  # the parsers' module (yahoo_finance) imports this one: no HTTP stack here
    import httpx

MAX_AGE = timedelta(hours=24)
CONSENT_HOSTS = ("guce.yahoo.com", "consent.yahoo.com")
_CRUMB = re.compile(r"[A-Za-z0-9./_\-]{4,64}")
_MAX_COOKIES = 20


class _Effective(Protocol):
    name: str

    @property
    def upstream(self) -> str: ...

    def base_url(self, role: str) -> str: ...


Raw = tuple[int, "httpx.Headers", bytes]
Get = Callable[[str, Mapping[str, str], int], Awaitable[Raw]]
"""`get(url, headers, max_bytes)`: one GET through the client's limiter, deadline and size cap,
redirects not followed (the session must see them)."""


def is_consent_url(location: str, base: str | None = None) -> bool:
    """Whether a redirect target is one of Yahoo's consent pages."""
    try:
        url = urlsplit(urljoin(base, location) if base else location)
        host = (url.hostname or "").lower()
    except (TypeError, ValueError):
        return False
    return host in CONSENT_HOSTS or host.endswith(CONSENT_HOSTS) or "/consent" in url.path.lower()


def consent_refusal(service: str, status: int, headers: Mapping[str, str], base: str) -> None:
    """Raise ConsentRequired when an answer redirects to a consent page."""
    location = headers.get("location", "")
    if 300 <= status < 400 and location and is_consent_url(location, base):
        raise ConsentRequired(
            service, "Yahoo redirected to its cookie-consent page (not followed)", dataset="chart"
        )


@record
class SessionData:
    origin: str
    cookies: Mapping[str, str]
    crumb: str
    created_at: datetime

    def valid(self, origin: str, now: datetime) -> bool:
        return self.origin == origin and bool(self.crumb) and now - self.created_at < MAX_AGE

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "origin": self.origin,
                "cookies": dict(self.cookies),
                "crumb": self.crumb,
                "created_at": self.created_at.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> SessionData | None:
        try:
            raw: Any = orjson.loads(data)
            cookies = {str(k): str(v) for k, v in dict(raw["cookies"]).items()}
            created = datetime.fromisoformat(str(raw["created_at"]))
            crumb = str(raw["crumb"])
            origin = str(raw["origin"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None
        if created.tzinfo is None or not _CRUMB.fullmatch(crumb):
            return None
        return cls(origin, cookies, crumb, created)


def parse_cookies(headers: httpx.Headers) -> dict[str, str]:
    """name → value of every `Set-Cookie` (attributes ignored; odd cookies skipped)."""
    from http.cookies import CookieError, SimpleCookie  # only once a cookie comes back (0.8 ms)

    jar: dict[str, str] = {}
    for line in headers.get_list("set-cookie")[:_MAX_COOKIES]:
        parsed: SimpleCookie = SimpleCookie()
        with contextlib.suppress(CookieError):
            parsed.load(line)
        for name, morsel in parsed.items():
            if len(morsel.value) <= 4096:
                jar[name] = morsel.value
    return jar


class CrumbSession:
    """The cookie + crumb of one Yahoo upstream (live or sandbox) for one run."""

    def __init__(
        self,
        effective: _Effective,
        state_dir: Path | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.service = effective.name
        self.origin = effective.base_url("default")
        self.cookie_url = effective.base_url("fc") + "/"
        self.crumb_url = self.origin + "/v1/test/getcrumb"
        self.path = state_dir / f"yahoo_session.{effective.upstream}.json" if state_dir else None
        self._clock = clock
        self._data: SessionData | None = None
        self._cookies: dict[str, str] | None = None  # from a set-up whose crumb step failed
        self._lock = asyncio.Lock()
        self.generation = 0
        self.setups = 0  # set-ups this run (the cookie + crumb requests)
        self.renewals = 0
        self.requests = 0  # network requests the set-ups sent

    @property
    def crumb(self) -> str | None:
        return self._data.crumb if self._data is not None else None

    # -- what a data request carries --------------------------------------------------------
    def apply(self, params: dict[str, str], headers: dict[str, str]) -> None:
        data = self._data
        if data is None:
            return
        params["crumb"] = data.crumb
        if data.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in data.cookies.items())

    def _valid(self) -> bool:
        return self._data is not None and self._data.valid(self.origin, self._clock())

    # -- set-up, reuse, renewal -------------------------------------------------------------
    async def ensure(self, get: Get) -> int:
        """A valid session (from this run, the state file, or a new set-up); its generation."""
        if self._valid():
            return self.generation
        async with self._lock:
            if self._valid():
                return self.generation
            if self.renewals == 0:  # another run may have set one up (or renewed it) meanwhile
                self._data = self._load()
                if self._valid():
                    assert self._data is not None
                    redact.register(self._data.crumb)
                    self.generation += 1
                    return self.generation
            self._data = await self._set_up(get)
            self._save()
            self.setups += 1
            self.generation += 1
            return self.generation

    def invalidate(self, generation: int) -> bool:
        """Drop the session Yahoo refused; False when this run already renewed it once."""
        if generation != self.generation:
            return True  # another request renewed it meanwhile: just use the new one
        if self.renewals >= 1:
            return False
        self.renewals += 1
        self._data = None
        self._cookies = None
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
        return True

    async def _set_up(self, get: Get) -> SessionData:
        cookies = self._cookies
        if cookies is None:  # a retry after a failed crumb request keeps the cookie it got
            cookies = self._cookies = await self._get_cookie(get)
        cookie_header = "; ".join(f"{k}={v}" for k, v in cookies.items())
        self.requests += 1
        status, headers, body = await get(
            self.crumb_url, {"Cookie": cookie_header} if cookie_header else {}, 1024
        )
        consent_refusal(self.service, status, headers, self.crumb_url)
        if status >= 500:
            raise TransientFailure(self.service, f"HTTP {status} for the session crumb")
        crumb = body.decode("utf-8", "replace").strip()
        if status != 200 or not _CRUMB.fullmatch(crumb):
            what = "an empty answer" if not crumb else f"HTTP {status}, {_gist(crumb)}"
            raise Blocked(self.service, f"the crumb request answered {what}, not a crumb")
        redact.register(crumb)
        self._cookies = None
        return SessionData(self.origin, cookies, crumb, self._clock())

    async def _get_cookie(self, get: Get) -> dict[str, str]:
        self.requests += 1
        status, headers, _ = await get(self.cookie_url, {}, 64 * 1024)
        consent_refusal(self.service, status, headers, self.cookie_url)
        if status == 429:
            raise Blocked(self.service, "HTTP 429 for the session cookie (taken for a bot)")
        if status >= 500:
            raise TransientFailure(self.service, f"HTTP {status} for the session cookie")
        return parse_cookies(headers)

    def _load(self) -> SessionData | None:
        if self.path is None:
            return None
        try:
            if self.path.stat().st_size > 64 * 1024:
                return None
            return SessionData.from_json(self.path.read_bytes())
        except OSError:
            return None

    def _save(self) -> None:
        if self.path is None or self._data is None:
            return
        with contextlib.suppress(OSError):  # a read-only state/ costs a set-up next run, no more
            atomic_write_bytes(self.path, self._data.to_json())  # mkstemp: mode 0600


def _gist(text: str) -> str:
    """A short, single-line description of a non-crumb answer (no secret: it is not a crumb)."""
    if "<" in text[:200]:
        return "an HTML page"
    return repr(" ".join(text.split())[:60])
