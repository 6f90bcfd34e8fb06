"""The seven simulated upstream services, by the name the product uses for each."""

from __future__ import annotations

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

UPSTREAMS: dict[str, Upstream] = {
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
SERVICE_NAMES: tuple[str, ...] = tuple(UPSTREAMS)

__all__ = ["SERVICE_NAMES", "UPSTREAMS", "Upstream"]
