"""How the simulated services defend themselves, the way the real ones do (on by default).

  * Yahoo refuses clients it takes for bots — anything that does not look like a browser — with
    the real `429 Too Many Requests` (text/plain, no Retry-After). Over plain-http loopback only
    what a browser-impersonating client *sends* can be checked: a browser User-Agent and Chrome's
    client-hint headers (`sec-ch-ua`); its TLS fingerprint (JA3/ALPN) exists only inside TLS,
    which the sandbox does not speak. `/` sets the session cookie (`A3`), `/v1/test/getcrumb`
    answers the crumb for that cookie (or the blocked body without one), and chart requests need
    the cookie and the matching `crumb=` (401 "Invalid Crumb" otherwise). The session endpoints
    are served even with the defences off (the product always sets a session up).
  * SEC answers its "Undeclared Automated Tool" 403 to a User-Agent that declares no name and
    e-mail, and its "Request Rate Threshold Exceeded" 403 (HTML, that title) to a client over 10
    requests/second — and keeps refusing for `sec_block_seconds` (10 minutes live; each request
    during the block extends it, as SEC does).
  * FMP's free plan covers US-listed stocks and ETFs: any other symbol answers 402; the key
    `invalid` is refused (401) — and so by Alpha Vantage (HTTP 200 `Error Message`), FRED (400
    "api_key is not registered") and CoinGecko (401).

The texts carry the real services' identifying titles and phrases; the prose is the sandbox's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import time
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie

from services.sandbox.reply import Call, Reply, json_reply, text_reply
from services.sandbox.universe import universe

ENV_VAR = "TRADESCOUT_SANDBOX_DEFENCES"
INVALID_KEY = "invalid"

YAHOO_BLOCKED = text_reply("Too Many Requests", 429)
YAHOO_CRUMB_BLOCKED = text_reply("Edge: Too Many Requests", 429)
YAHOO_INVALID_CRUMB = json_reply(
    {
        "finance": {
            "result": None,
            "error": {"code": "Unauthorized", "description": "Invalid Crumb"},
        }
    },
    401,
)
SEC_UNDECLARED = text_reply(
    "<html><head><title>SEC.gov | Your Request Originates from an Undeclared Automated Tool"
    "</title></head><body><h1>Your Request Originates from an Undeclared Automated Tool</h1>"
    "<p>Declare your traffic: send a User-Agent with your name and a contact e-mail "
    "(tradescout sandbox).</p></body></html>",
    403,
    "text/html",
)
SEC_RATE_THRESHOLD = text_reply(
    '<html xmlns="http://www.w3.org/1999/xhtml">\n<head>\n'
    '<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />\n'
    "<title>SEC.gov | Request Rate Threshold Exceeded</title>\n</head>\n<body>\n"
    "<h1>Your Request Rate Has Exceeded the Threshold</h1>\n"
    "<p>More than 10 requests per second; blocked for a while (tradescout sandbox).</p>\n"
    "</body>\n</html>\n",
    403,
    "text/html",
)
FMP_INVALID_KEY = json_reply(
    {"Error Message": "Invalid API KEY. The key sent is not a valid key (tradescout sandbox)."},
    401,
)
FMP_PLAN = json_reply(
    {
        "Error Message": "Premium Query Parameter: this symbol is not available under your "
        "current subscription; the free plan covers US-listed symbols (tradescout sandbox)."
    },
    402,
)
AV_INVALID_KEY = json_reply(
    {"Error Message": "the parameter apikey is invalid or missing (tradescout sandbox)."}
)
FRED_INVALID_KEY = json_reply(
    {
        "error_code": 400,
        "error_message": "Bad Request.  The value for variable api_key is not registered "
        "(tradescout sandbox).",
    },
    400,
)
COINGECKO_INVALID_KEY = json_reply(
    {"status": {"error_code": 10002, "error_message": "Invalid API Key (tradescout sandbox)"}},
    401,
)


def looks_like_a_browser(call: Call) -> bool:
    """What a Chrome-impersonating client sends over plain http: its User-Agent and hints."""
    agent = call.headers.get("user-agent", "")
    return agent.startswith("Mozilla/5.0") and "sec-ch-ua" in call.headers


def declares_identity(call: Call) -> bool:
    """SEC's rule: a User-Agent with a name and an e-mail address ("Jane Doe jane@x.org")."""
    words = call.headers.get("user-agent", "").split()
    has_mail = any("@" in w and "." in w.split("@", 1)[1] for w in words)
    return has_mail and len(words) >= 2 and not words[0].startswith("Mozilla/")


def _cookie(call: Call, name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(call.headers.get("cookie", ""))
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


class Defences:
    """The defences' state: Yahoo's cookie secret, SEC's block."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        sec_block_seconds: float = 600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.sec_block_seconds = sec_block_seconds
        self._monotonic = monotonic
        self._secret = os.urandom(16)
        self._nonces = itertools.count(1)
        self._sec_blocked_until = 0.0

    def reset(self) -> None:
        self._sec_blocked_until = 0.0

    # -- Yahoo's session -------------------------------------------------------------------
    def crumb_for(self, nonce: str) -> str:
        digest = hmac.new(self._secret, nonce.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest)[:11].decode()

    def _session_crumb(self, call: Call) -> str | None:
        """The crumb that belongs to the request's `A3` cookie (None: no valid cookie)."""
        value = _cookie(call, "A3")
        if not value or not value.startswith("d="):
            return None
        return self.crumb_for(value[2:])

    def yahoo(self, call: Call) -> Reply | None:
        """Yahoo's session endpoints and checks; None lets the chart handler answer."""
        if self.enabled and not looks_like_a_browser(call):
            return YAHOO_BLOCKED
        if call.path == "/":
            nonce = f"{next(self._nonces):06d}{os.urandom(4).hex()}"
            cookie = f"A3=d={nonce}; Max-Age=31557600; Path=/; SameSite=None; HttpOnly"
            return Reply(404, b"Not Found", "text/plain; charset=utf-8", (("set-cookie", cookie),))
        if call.path == "/v1/test/getcrumb":
            crumb = self._session_crumb(call)
            if crumb is None:
                return YAHOO_CRUMB_BLOCKED
            return text_reply(crumb, 200)
        if self.enabled:
            expected = self._session_crumb(call)
            if expected is None or not hmac.compare_digest(expected, call.params.get("crumb", "")):
                return YAHOO_INVALID_CRUMB
        return None

    # -- SEC ---------------------------------------------------------------------------------
    def sec_blocked(self) -> Reply | None:
        """During a block every request is refused, and extends it."""
        if not self.enabled:
            return None
        now = self._monotonic()
        if now < self._sec_blocked_until:
            self._sec_blocked_until = now + self.sec_block_seconds
            return SEC_RATE_THRESHOLD
        return None

    def sec_over_threshold(self) -> Reply:
        self._sec_blocked_until = self._monotonic() + self.sec_block_seconds
        return SEC_RATE_THRESHOLD

    # -- every service -------------------------------------------------------------------------
    def refuse(self, service: str, call: Call) -> Reply | None:
        """A refusal the real service would answer this call with (before its rate limits)."""
        if service == "yahoo_finance":
            return self.yahoo(call)
        if not self.enabled:
            return None
        if service == "sec_edgar":
            if not declares_identity(call):
                return SEC_UNDECLARED
            return self.sec_blocked()
        key = call.params.get("apikey") or call.params.get("api_key")
        if service == "fmp":
            if key == INVALID_KEY:
                return FMP_INVALID_KEY
            symbol = call.params.get("symbol", "").strip().upper()
            sec = universe().security(symbol) if symbol else None
            if sec is not None and sec.kind in {"equity", "etf"} and sec.country != "US":
                return FMP_PLAN
        elif service == "alpha_vantage" and key == INVALID_KEY:
            return AV_INVALID_KEY
        elif service == "fred" and key == INVALID_KEY:
            return FRED_INVALID_KEY
        elif service == "coingecko" and INVALID_KEY in (
            call.headers.get("x-cg-demo-api-key"),
            call.headers.get("x-cg-pro-api-key"),
        ):
            return COINGECKO_INVALID_KEY
        return None


def defences_from_env(environ: dict[str, str] | None = None) -> bool:
    """`TRADESCOUT_SANDBOX_DEFENCES=off` turns them off (experiments); anything else is on."""
    env = os.environ if environ is None else environ
    return env.get(ENV_VAR, "on").strip().lower() not in {"off", "0", "false", "no"}
