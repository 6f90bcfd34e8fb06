"""The one list of upstream services: their modules and specs, the variables their credentials
come from, what the sandbox sends instead, and the kinds of upstream a run can talk to.

Everything else that names services (settings, the sandbox, the CLI, tests) derives from this
module, so adding a service is one module plus one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Literal, get_args

from services import alpha_vantage, coingecko, fmp, fred, imf, sec_edgar, yahoo_finance
from services.spec import ServiceSpec

MODULES: dict[str, ModuleType] = {
    module.NAME: module
    for module in (yahoo_finance, fmp, alpha_vantage, sec_edgar, fred, coingecko, imf)
}

SPECS: dict[str, ServiceSpec] = {name: module.SPEC for name, module in MODULES.items()}

SERVICE_NAMES: tuple[str, ...] = tuple(SPECS)

Upstream = Literal["live", "sandbox"]
"""Whose data a run reads and writes: the real services, or the loopback simulator. Cache keys,
quotas and the `synthetic` flag are kept apart by it. Offline is not an upstream but a run mode
(no network at all) over either one's cache."""

UPSTREAMS: tuple[Upstream, ...] = get_args(Upstream)

# The variables each service's credentials are read from, in order of precedence (the specs'
# own declarations: `ServiceSpec.credentials`).
CREDENTIAL_ENV: Mapping[str, tuple[str, ...]] = {
    name: tuple(c.env for c in spec.credentials) for name, spec in SPECS.items() if spec.credentials
}

# What the product sends to its own simulator instead of real credentials: an identity where
# the service wants one (SEC's User-Agent), a placeholder key elsewhere.
SANDBOX_IDENTITY = "tradescout-sandbox sandbox@example.invalid"
SANDBOX_KEY = "sandbox-key"


def sandbox_credential(service: str) -> str | None:
    """The stand-in credential for `service` against the sandbox (None: it takes none)."""
    basic = spec_for(service).credential(None)
    if basic is None:
        return None
    return SANDBOX_IDENTITY if basic.name == "User-Agent" else SANDBOX_KEY


def spec_for(service: str) -> ServiceSpec:
    try:
        return SPECS[service]
    except KeyError:
        raise KeyError(f"unknown service {service!r}; known: {', '.join(SPECS)}") from None
