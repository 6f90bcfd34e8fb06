"""Which upstream a run talks to, and the per-service client configuration for it.

`live` uses the real base URLs (or `TRADESCOUT_{SERVICE}_BASE_URL` / config overrides) and the
real keys from the environment. `sandbox` points every service at `{sandbox_url}/{service}` with
sandbox credentials: real keys are never sent to the sandbox. Offline is a run mode over either
one's cache: no request at all.
"""

from __future__ import annotations

from discovery.settings import Settings
from services.config import ServiceConfig, configs_from_settings
from services.recordclass import record
from services.registry import SERVICE_NAMES, UPSTREAMS, Upstream

OFFLINE = "offline"
LABELS: tuple[str, ...] = (*UPSTREAMS, OFFLINE)
"""Every `Target.label`: what reports and the ledger may call a run's upstream."""


@record
class Target:
    """Where a run's data comes from, and whether it may use the network."""

    upstream: Upstream = "live"
    sandbox_url: str | None = None
    offline: bool = False

    def __post_init__(self) -> None:
        if self.upstream == "sandbox" and not self.sandbox_url:
            raise ValueError("sandbox upstream needs a sandbox URL")

    @property
    def label(self) -> str:
        """What reports and the ledger call the run's upstream: `offline` when nothing was
        sent, else the upstream."""
        return OFFLINE if self.offline else self.upstream


def service_configs(settings: Settings, target: Target) -> dict[str, ServiceConfig]:
    """One ServiceConfig per service for this run."""
    url = target.sandbox_url if target.upstream == "sandbox" else None
    return configs_from_settings(settings, SERVICE_NAMES, sandbox_url=url)
