"""Alpha Vantage OVERVIEW: fallback company fundamentals.

Key in the `apikey` query parameter. Alpha Vantage answers everything with HTTP 200: a `Note`
(the per-minute throttle: no more calls this run) or `Information` (the 25-a-day limit: no more
calls until the next UTC midnight, remembered in state/) is a quota signal, never data, never
cached nor retried; an `Error Message` about the key ("the parameter apikey is invalid or
missing") is a refused key, any other `Error Message` (an invalid call) a bad response. An unknown
symbol answers `{}` on OVERVIEW: a negative result, like a 404 elsewhere.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services._common import as_float, as_str, parsed_verdict, upstream_message
from services.errors import BadCredential, BadResponse, QuotaExhausted, ServiceError
from services.records import CompanyProfile
from services.spec import Credential, DatasetSpec, Reply, ServiceRequest, ServiceSpec, Verdict

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


def probe_request() -> ServiceRequest:
    """One OVERVIEW of a US large cap every key covers (the one FMP's probe asks too)."""
    return overview_request("AAPL")


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


def _about_the_key(message: str) -> bool:
    lowered = message.lower()
    return ("apikey" in lowered or "api key" in lowered) and (
        "invalid" in lowered or "missing" in lowered
    )


def refusal(request: ServiceRequest, reply: Reply) -> ServiceError | None:
    body = reply.body
    if not isinstance(body, dict):
        return None
    message = upstream_message(body, "Error Message", *THROTTLE_KEYS)
    if message and _about_the_key(message):
        return BadCredential(NAME, f"refused the key: {message}", dataset=request.dataset)
    if "Information" in body:
        return QuotaExhausted(
            NAME,
            f"daily limit signalled (Information): {message}",
            dataset=request.dataset,
            hold="utc_day",
        )
    if "Note" in body:
        return QuotaExhausted(
            NAME,
            f"per-minute limit signalled (Note); not calling it again this run: {message}",
            dataset=request.dataset,
        )
    if "Error Message" in body:
        return BadResponse(
            NAME, f"error body for {request.path}: {message}", dataset=request.dataset
        )
    return None


def classify(request: ServiceRequest, status: int, body: Any) -> Verdict:
    return parsed_verdict(request, status, body, parse_overview, empty="negative")


SPEC = ServiceSpec(
    name=NAME,
    default_base_urls={"default": "https://www.alphavantage.co"},
    datasets={"overview": DatasetSpec("overview", ttl=timedelta(days=7))},
    rate_per_second=1 / 13,  # one call per 13 s stays under 5 per minute
    daily_quota=25,
    max_connections=1,
    timeout_seconds=15.0,
    credentials=(Credential("ALPHA_VANTAGE_API_KEY", "query", "apikey"),),
    credential_required=True,
    max_retry_delay_seconds=30.0,
    classify=classify,
    refusal=refusal,
    probe=probe_request,
)
