"""The one function that derives cache keys (and the redaction it relies on).

The system tradescout replaces had a 0% hit rate because two components hashed keys differently.
Here every key comes from `derive_key`: service + dataset + canonical params (names lower-cased
and sorted, values stripped, list values sorted, secrets removed). Nothing else builds a key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from urllib.parse import quote

# Parameter and header names that carry credentials. Matched case-insensitively.
SECRET_NAMES: frozenset[str] = frozenset(
    {
        "apikey",
        "api_key",
        "api-key",
        "token",
        "access_token",
        "key",
        "secret",
        "password",
        "authorization",
        "x-cg-demo-api-key",
        "x-cg-pro-api-key",
        "user-agent",
    }
)

REDACTED = "***"
_MAX_READABLE = 180


def is_secret_name(name: str) -> bool:
    return name.strip().lower() in SECRET_NAMES


def redact(params: Mapping[str, object]) -> dict[str, object]:
    """A copy of `params` (or headers) with every credential replaced by `***`."""
    return {k: (REDACTED if is_secret_name(k) else v) for k, v in params.items()}


def _canonical_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(sorted(_canonical_value(v) for v in value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def canonical_params(params: Mapping[str, object], extra_secrets: Iterable[str] = ()) -> str:
    """Sorted `name=value` pairs without secrets or empty values; stable across callers."""
    secrets = {s.lower() for s in extra_secrets}
    pairs = sorted(
        (name.strip().lower(), _canonical_value(value))
        for name, value in params.items()
        if value is not None and not is_secret_name(name) and name.strip().lower() not in secrets
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
    """`service:dataset:canonical-params`, hashed past 180 characters.

    Sandbox data lives under its own keys (`sandbox|...`) so synthetic values can never be served
    to a live run.
    """
    canonical = canonical_params(params, extra_secrets)
    if len(canonical) > _MAX_READABLE:
        canonical = "sha256=" + hashlib.sha256(canonical.encode()).hexdigest()
    key = f"{service.lower()}:{dataset.lower()}:{canonical}"
    return key if upstream == "live" else f"{upstream}|{key}"
