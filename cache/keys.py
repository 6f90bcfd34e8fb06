"""The one function that derives cache keys (and the redaction it relies on).

The system tradescout replaces had a 0% hit rate because two components hashed keys differently.
Here every key comes from `derive_key`: service + dataset + canonical params (names lower-cased
and sorted, values stripped, list values sorted, empty values and secrets removed). Nothing else
builds a key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

# Parameter and header names that carry credentials. Matched case-insensitively.
SECRET_NAMES: frozenset[str] = frozenset(
    {
        "apikey",
        "api_key",
        "api-key",
        "x-api-key",
        "token",
        "access_token",
        "api_token",
        "key",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-cg-demo-api-key",
        "x-cg-pro-api-key",
        "user-agent",
    }
)
# Any name containing one of these is a credential too (`fmp_apikey`, `X-Auth-Token`, ...).
_SECRET_FRAGMENTS: tuple[str, ...] = ("apikey", "api_key", "api-key", "token", "secret", "passw")

REDACTED = "***"
_MAX_READABLE = 180


def is_secret_name(name: str) -> bool:
    lowered = name.strip().lower()
    return lowered in SECRET_NAMES or any(f in lowered for f in _SECRET_FRAGMENTS)


def _redact_url(value: str) -> str:
    """A URL whose query carries a credential (`...?apikey=K`) keeps its shape, not the secret."""
    parts = urlsplit(value)
    if not parts.query or not parts.scheme:
        return value
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(is_secret_name(n) for n, _ in pairs):
        return value
    query = urlencode([(n, REDACTED if is_secret_name(n) else v) for n, v in pairs], safe="*")
    return urlunsplit(parts._replace(query=query))


def _redact_value(value: object) -> object:
    if isinstance(value, str) and "?" in value and "://" in value:
        return _redact_url(value)
    if isinstance(value, Mapping):
        return redact(value)
    return value


def redact(params: Mapping[str, object]) -> dict[str, object]:
    """A copy of `params` (or headers) with every credential replaced by `***`.

    Nested mappings and URLs with a query string are redacted too, so a request recorded as
    `{"url": "https://host/x?apikey=K", "headers": {...}}` keeps no secret anywhere.
    """
    return {
        str(k): (REDACTED if is_secret_name(str(k)) else _redact_value(v))
        for k, v in params.items()
    }


def _canonical_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(sorted(_canonical_value(v) for v in value))
    if isinstance(value, Mapping):
        items = {str(k).strip().lower(): _canonical_value(v) for k, v in value.items()}
        return json.dumps(items, sort_keys=True, separators=(",", ":"))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def canonical_params(params: Mapping[str, object], extra_secrets: Iterable[str] = ()) -> str:
    """Sorted `name=value` pairs without secrets or empty values; stable across callers.

    Names are case-insensitive (`Symbol` = `symbol`); values keep their case (a series id or a
    date range is data, and callers normalize tickers before asking).
    """
    secrets = {s.strip().lower() for s in extra_secrets}
    pairs = sorted(
        (lowered, text)
        for name, value in params.items()
        if value is not None
        and not is_secret_name(name)
        and (lowered := name.strip().lower()) not in secrets
        and (text := _canonical_value(value)) != ""
    )
    return "&".join(f"{quote(n, safe='')}={quote(v, safe=',.-_^=')}" for n, v in pairs)


def derive_key(
    service: str,
    dataset: str,
    params: Mapping[str, object],
    *,
    upstream: str = "live",
    extra_secrets: Iterable[str] = (),
) -> str:
    """`service:dataset:canonical-params`, the params hashed past 180 characters.

    Sandbox data lives under its own keys (`sandbox|...`) so synthetic values can never be served
    to a live run.
    """
    canonical = canonical_params(params, extra_secrets)
    if len(canonical) > _MAX_READABLE:
        canonical = "sha256=" + hashlib.sha256(canonical.encode()).hexdigest()
    return under_upstream(
        f"{service.strip().lower()}:{dataset.strip().lower()}:{canonical}", upstream
    )


def under_upstream(key: str, upstream: str) -> str:
    """A live key as the `upstream` stores it (`sandbox|…`; a live key as it is)."""
    mode = upstream.strip().lower()
    return key if mode == "live" else f"{mode}|{key}"
