"""Masking secrets in every form they can take in a URL, a header, a body or a log line.

A key such as `a+b/c%d e` appears raw in a header, as `a%2Bb%2Fc%25d+e` (quote_plus) or
`a%2Bb%2Fc%25d%20e` (quote) in a URL, with either hex case, and — since `+` means space in a
query — as `a b/c%d e` once a server decoded it. `forms(secret)` lists them all; `mask` replaces
every one. The shared client registers each credential (and Yahoo's crumb) here, so the log
filter on httpx/httpcore (whose own lines print the URL) masks them too, whatever the encoding.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
# A fallback for secrets never registered (e.g. a key from another process in a pasted URL).
_SECRET_QUERY_RE = re.compile(
    r"(?i)\b(apikey|api_key|api-key|token|access_token|key|secret|password|crumb)=[^&\s\"']+"
)


def forms(secret: str) -> tuple[str, ...]:
    """Every spelling of `secret` worth masking, longest first (so no form masks half another)."""
    if not secret:
        return ()
    import httpx  # here, not at the top: the parsers' modules import this one (no HTTP stack)

    spelled = {
        secret,
        quote(secret, safe=""),
        quote(secret),  # safe="/"
        quote_plus(secret),
        quote_plus(secret, safe="/"),
        secret.replace("+", " "),  # a `+` a server decoded as a space
        secret.replace(" ", "+"),
        str(httpx.QueryParams({"k": secret}))[2:],  # what httpx itself puts in a URL
    }
    for text in list(spelled):
        if "%" in text:  # percent-escapes in the other hex case
            spelled.add(re.sub(r"%[0-9A-Fa-f]{2}", lambda m: m.group(0).lower(), text))
            spelled.add(re.sub(r"%[0-9A-Fa-f]{2}", lambda m: m.group(0).upper(), text))
    return tuple(sorted((s for s in spelled if len(s) >= 4), key=len, reverse=True))


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with every form of every secret replaced by `***`."""
    for secret in secrets:
        for form in forms(secret):
            if form in text:
                text = text.replace(form, MASK)
    return text


def contains(text: str, secrets: Iterable[str]) -> bool:
    return any(form in text for secret in secrets for form in forms(secret))


class _Registry:
    """The secrets of this process (credentials in use, session crumbs); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        if secret and secret.strip():
            with self._lock:
                self._secrets.add(secret)

    def snapshot(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._secrets)


REGISTRY = _Registry()


def register(secret: str | None) -> None:
    """Remember a secret so every log line masks it from now on."""
    REGISTRY.add(secret)


class RedactingFilter(logging.Filter):
    """Masks registered secrets (every form) and credential-looking query parameters in log
    records of loggers tradescout does not control (httpx: "HTTP Request: GET https://…")."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose args do not format: leave it to logging
            return True
        cleaned = mask(message, REGISTRY.snapshot())
        cleaned = _SECRET_QUERY_RE.sub(lambda m: f"{m.group(1)}={MASK}", cleaned)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = RedactingFilter()
_LOGGERS = ("httpx", "httpcore", "httpcore.http11", "httpcore.connection", "tradescout.services")


def install_log_redaction() -> None:
    """Filter httpx, httpcore and our own loggers (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
