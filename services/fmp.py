"""Financial Modeling Prep `/stable/profile`: company profile (sector, industry, cap, beta).

Key in the `apikey` query parameter (FMP takes no header), added by the client at send time.
An unknown symbol answers `[]`; a symbol outside the free plan answers HTTP 402 — both are
negative results (cached briefly) so a portfolio run does not spend quota asking again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services._common import as_float, as_str, bad_shape, default_verdict, upstream_message
from services.errors import BadResponse, QuotaExhausted
from services.records import CompanyProfile
from services.spec import DatasetSpec, ServiceRequest, ServiceSpec, Verdict

NAME = "fmp"


def profile_request(symbol: str) -> ServiceRequest:
    sym = symbol.strip().upper()
    return ServiceRequest(
        service=NAME,
        dataset="profile",
        path="/stable/profile",
        params={"symbol": sym},
        subjects=(sym,),
    )


def parse_profile(payload: Any) -> CompanyProfile | None:
    """The first profile of the list; `[]` (unknown symbol) is None."""
    if not isinstance(payload, list):
        raise BadResponse(NAME, "profile payload is not a list")
    if not payload:
        return None
    item = payload[0]
    if not isinstance(item, dict) or not as_str(item.get("symbol")):
        raise BadResponse(NAME, "profile entry has no symbol")
    return CompanyProfile(
        symbol=str(item["symbol"]).upper(),
        name=as_str(item.get("companyName")),
        sector=as_str(item.get("sector")),
        industry=as_str(item.get("industry")),
        market_cap=as_float(item.get("marketCap", item.get("mktCap"))),  # mktCap: legacy v3
        beta=as_float(item.get("beta")),
        currency=as_str(item.get("currency")),
        exchange=as_str(item.get("exchange") or item.get("exchangeShortName")),
        country=as_str(item.get("country")),
        source=NAME,
    )


def classify(request: ServiceRequest, status: int, body: Any) -> Verdict:
    message = upstream_message(body, "Error Message", "message")
    if status == 402:
        return "negative"  # "premium query parameter": not available to this plan
    if isinstance(body, dict) and message:
        if "limit" in message.lower():
            raise QuotaExhausted(NAME, f"daily limit reached: {message}", dataset=request.dataset)
        if 200 <= status < 300:
            raise BadResponse(
                NAME, f"error body for {request.path}: {message}", dataset=request.dataset
            )
    verdict = default_verdict(request, status, body)
    if verdict == "ok":
        try:
            parse_profile(body)
        except BadResponse as exc:
            raise bad_shape(request, exc.detail) from None
        if body == []:
            return "negative"
    return verdict


SPEC = ServiceSpec(
    name=NAME,
    default_base_urls={"default": "https://financialmodelingprep.com"},
    datasets={"profile": DatasetSpec("profile", ttl=timedelta(days=7))},
    rate_per_second=3.0,  # 5 req/s enforced; margin for arrival jitter on a busy machine
    daily_quota=250,
    max_connections=4,
    timeout_seconds=10.0,
    credential_env="FMP_API_KEY",
    credential_required=True,
    credential_placement="query",
    credential_name="apikey",
    classify=classify,
)
