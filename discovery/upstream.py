"""Which upstream a run talks to, and the per-service client configuration for it.

`live` uses the real base URLs (or `TRADESCOUT_{SERVICE}_BASE_URL` / config overrides) and the
real keys from the environment. `sandbox` points every service at `{sandbox_url}/{service}` with
sandbox credentials: real keys are never sent to the sandbox. `offline` makes no request at all.
"""

from __future__ import annotations

from typing import Literal

from discovery.settings import SERVICE_NAMES, Settings
from services.config import ServiceConfig, configs_from_settings

Upstream = Literal["live", "sandbox", "offline"]


def service_configs(
    settings: Settings, upstream: Upstream, sandbox_url: str | None = None
) -> dict[str, ServiceConfig]:
    """One ServiceConfig per service for this run."""
    if upstream == "sandbox" and not sandbox_url:
        raise ValueError("sandbox upstream needs a sandbox URL")
    return configs_from_settings(
        settings, SERVICE_NAMES, sandbox_url=sandbox_url if upstream == "sandbox" else None
    )
