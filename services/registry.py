"""Service name → its module and spec: the one list of the seven upstream services."""

from __future__ import annotations

from types import ModuleType

from services import alpha_vantage, coingecko, fmp, fred, imf, sec_edgar, yahoo_finance
from services.spec import ServiceSpec

MODULES: dict[str, ModuleType] = {
    module.NAME: module
    for module in (yahoo_finance, fmp, alpha_vantage, sec_edgar, fred, coingecko, imf)
}

SPECS: dict[str, ServiceSpec] = {name: module.SPEC for name, module in MODULES.items()}


def spec_for(service: str) -> ServiceSpec:
    try:
        return SPECS[service]
    except KeyError:
        raise KeyError(f"unknown service {service!r}; known: {', '.join(SPECS)}") from None
