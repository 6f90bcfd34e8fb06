"""The seven simulated upstream services, by the name the product uses for each."""

from __future__ import annotations

from services.registry import SERVICE_NAMES as REGISTERED
from services.sandbox.upstreams import (
    alpha_vantage,
    coingecko,
    fmp,
    fred,
    imf,
    sec_edgar,
    yahoo_finance,
)
from services.sandbox.upstreams.base import Upstream

_SIMULATED: dict[str, Upstream] = {
    u.name: u
    for u in (
        yahoo_finance.UPSTREAM,
        fmp.UPSTREAM,
        alpha_vantage.UPSTREAM,
        sec_edgar.UPSTREAM,
        fred.UPSTREAM,
        coingecko.UPSTREAM,
        imf.UPSTREAM,
    )
}
if set(_SIMULATED) != set(REGISTERED):  # the registry is the list; the sandbox follows it
    raise ImportError(f"sandbox simulates {sorted(_SIMULATED)}, registry has {list(REGISTERED)}")
UPSTREAMS: dict[str, Upstream] = {name: _SIMULATED[name] for name in REGISTERED}
SERVICE_NAMES: tuple[str, ...] = REGISTERED

__all__ = ["SERVICE_NAMES", "UPSTREAMS", "Upstream"]
