"""Financial Modeling Prep `/stable/profile`: company profile (sector, industry, cap, beta).

Key in the `apikey` query parameter (FMP takes no header), added by the client at send time.
An unknown symbol answers `[]`: a negative result. Refusals are `{"Error Message": "…"}` and the
status says which (real bodies in tests/fixtures/payloads): 401 a refused key (bad_credential),
402 a symbol outside the plan (plan_limited: the caller falls back to Alpha Vantage), 403 e.g. a
retired legacy endpoint (bad_response with FMP's message), 429 "Limit Reach" the daily limit
(quota_exhausted until the next UTC midnight; a 429 that carries Retry-After is pacing, retried).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services._common import as_float, as_str, parsed_verdict, refusal_message
from services.errors import BadCredential, BadResponse, PlanLimited, QuotaExhausted, ServiceError
from services.records import CompanyProfile
from services.spec import Credential, DatasetSpec, Reply, ServiceRequest, ServiceSpec, Verdict

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


def probe_request() -> ServiceRequest:
    """One profile inside every plan (a US large cap): a refused key shows, a plan limit cannot."""
    return profile_request("AAPL")


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


def refusal(request: ServiceRequest, reply: Reply) -> ServiceError | None:
    status = reply.status
    message = refusal_message(reply.body, reply.text, "Error Message", "message")
    lowered = message.lower()
    where = f"HTTP {status} for {request.path}: {message}"
    if "limit reach" in lowered and not (status == 429 and reply.headers.get("retry-after")):
        return QuotaExhausted(NAME, where, dataset=request.dataset, hold="utc_day")
    if status == 401 or ("api key" in lowered and "invalid" in lowered):
        return BadCredential(NAME, where, dataset=request.dataset)
    if status == 402:
        return PlanLimited(NAME, where, dataset=request.dataset)
    if status == 403 or (200 <= status < 300 and isinstance(reply.body, dict) and message):
        return BadResponse(NAME, where, dataset=request.dataset)
    return None


def classify(request: ServiceRequest, status: int, body: Any) -> Verdict:
    return parsed_verdict(request, status, body, parse_profile, empty="negative")  # [] is None


SPEC = ServiceSpec(
    name=NAME,
    default_base_urls={"default": "https://financialmodelingprep.com"},
    datasets={"profile": DatasetSpec("profile", ttl=timedelta(days=7))},
    rate_per_second=3.0,  # 5 req/s enforced; margin for arrival jitter on a busy machine
    daily_quota=250,
    max_connections=4,
    timeout_seconds=10.0,
    credentials=(Credential("FMP_API_KEY", "query", "apikey"),),
    credential_required=True,
    classify=classify,
    refusal=refusal,
    probe=probe_request,
)
