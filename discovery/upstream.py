"""Which upstream a run talks to, and the per-service client configuration for it.

`live` uses the real base URLs (or `TRADESCOUT_{SERVICE}_BASE_URL` / config overrides) and the
real keys from the environment. `sandbox` points every service at `{sandbox_url}/{service}` and
gives each keyed service a sandbox credential: real keys are never sent to the sandbox.
`offline` builds no network at all.
"""

from __future__ import annotations

from typing import Literal

from discovery.settings import SERVICE_NAMES, Settings
from services.config import ServiceConfig
from services.registry import SPECS

Upstream = Literal["live", "sandbox", "offline"]

SANDBOX_CREDENTIALS: dict[str, str] = {
    "fmp": "sandbox-key",
    "alpha_vantage": "sandbox-key",
    "fred": "sandbox-key",
    "coingecko": "sandbox-key",
    "sec_edgar": "tradescout-sandbox sandbox@example.invalid",
}


def service_configs(
    settings: Settings, upstream: Upstream, sandbox_url: str | None = None
) -> dict[str, ServiceConfig]:
    """One ServiceConfig per service for this run."""
    configs: dict[str, ServiceConfig] = {}
    for name in SERVICE_NAMES:
        spec = SPECS[name]
        over = settings.overrides(name)
        credential: str | None
        if upstream == "sandbox":
            if not sandbox_url:
                raise ValueError("sandbox upstream needs a sandbox URL")
            base = sandbox_url.rstrip("/") + "/" + name
            base_urls: dict[str, str] | None = {role: base for role in spec.default_base_urls}
            credential = SANDBOX_CREDENTIALS.get(name)
        else:
            base_urls = (
                {role: over.base_url.rstrip("/") for role in spec.default_base_urls}
                if over.base_url
                else None
            )
            secret = settings.credential(name)
            credential = secret.get_secret_value() if secret is not None else None
        configs[name] = ServiceConfig(
            name=name,
            enabled=over.enabled,
            base_urls=base_urls,
            credential=credential,
            rate_per_second=over.rate_per_second,
            daily_quota=over.daily_quota,
            max_connections=over.max_connections,
            timeout_seconds=over.timeout_seconds,
            upstream="sandbox" if upstream == "sandbox" else "live",
        )
    return configs
