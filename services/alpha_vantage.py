"""Alpha Vantage OVERVIEW: fallback company fundamentals.

Key in the `apikey` query parameter. Alpha Vantage throttles with HTTP 200 and a `Note`
(per-minute) or `Information` (per-day) body: that is a quota signal, not data — it is never
cached nor retried, and the hub stops calling the service for the rest of the run. An unknown
symbol answers `{}`: a negative result.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services._common import as_float, as_str, bad_shape, default_verdict, upstream_message
from services.errors import BadResponse, QuotaExhausted
from services.records import CompanyProfile
from services.spec import DatasetSpec, ServiceRequest, ServiceSpec, Verdict

NAME = "alpha_vantage"
THROTTLE_KEYS = ("Note", "Information")


def overview_request(symbol: str) -> ServiceRequest:
    sym = symbol.strip().upper()
    return ServiceRequest(
        service=NAME,
        dataset="overview",
        path="/query",
        params={"function": "OVERVIEW", "symbol": sym},
        subjects=(sym,),
    )


def parse_overview(payload: Any) -> CompanyProfile | None:
    """`{}` (unknown symbol) is None."""
    if not isinstance(payload, dict):
        raise BadResponse(NAME, "overview payload is not an object")
    if not payload:
        return None
    if not as_str(payload.get("Symbol")):
        raise BadResponse(NAME, "overview payload has no Symbol")
    return CompanyProfile(
        symbol=str(payload["Symbol"]).upper(),
        name=as_str(payload.get("Name")),
        sector=as_str(payload.get("Sector")),
        industry=as_str(payload.get("Industry")),
        market_cap=as_float(payload.get("MarketCapitalization")),
        beta=as_float(payload.get("Beta")),
        currency=as_str(payload.get("Currency")),
        exchange=as_str(payload.get("Exchange")),
        country=as_str(payload.get("Country")),
        source=NAME,
    )


def classify(request: ServiceRequest, status: int, body: Any) -> Verdict:
    if isinstance(body, dict) and any(key in body for key in THROTTLE_KEYS):
        kind = "per-minute" if "Note" in body else "daily"
        raise QuotaExhausted(
            NAME,
            f"Alpha Vantage {kind} limit signalled; not calling it again this run",
            dataset=request.dataset,
        )
    message = upstream_message(body, "Error Message")
    if message and 200 <= status < 300:
        raise BadResponse(
            NAME, f"error body for {request.path}: {message}", dataset=request.dataset
        )
    verdict = default_verdict(request, status, body)
    if verdict == "ok":
        try:
            profile = parse_overview(body)
        except BadResponse as exc:
            raise bad_shape(request, exc.detail) from None
        if profile is None:
            return "negative"
    return verdict


SPEC = ServiceSpec(
    name=NAME,
    default_base_urls={"default": "https://www.alphavantage.co"},
    datasets={"overview": DatasetSpec("overview", ttl=timedelta(days=7))},
    rate_per_second=1 / 13,  # one call per 13 s stays under 5 per minute
    daily_quota=25,
    max_connections=1,
    timeout_seconds=15.0,
    credential_env="ALPHA_VANTAGE_API_KEY",
    credential_required=True,
    credential_placement="query",
    credential_name="apikey",
    max_retry_delay_seconds=30.0,
    classify=classify,
)
