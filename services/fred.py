"""FRED series observations: macro indicators (FEDFUNDS, DGS10, CPIAUCSL, UNRATE, VIXCLS).

Key in the `api_key` query parameter. Values are strings and `"."` marks a day without a value.
FRED answers HTTP 400 both for a refused key ("The value for variable api_key is not registered":
bad_credential) and for an unknown series ("The series does not exist": a negative result,
cached); its message tells them apart. Neither is retried.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from services._common import as_date, as_float, parsed_verdict, upstream_message
from services.errors import BadCredential, BadResponse, ServiceError
from services.records import Observation
from services.spec import Credential, DatasetSpec, Reply, ServiceRequest, ServiceSpec, Verdict

NAME = "fred"


def observations_request(series_id: str, observation_start: date | None = None) -> ServiceRequest:
    series = series_id.strip().upper()
    params = {"series_id": series, "file_type": "json"}
    if observation_start is not None:
        params["observation_start"] = observation_start.isoformat()
    return ServiceRequest(
        service=NAME,
        dataset="observations",
        path="/fred/series/observations",
        params=params,
        subjects=(series,),
    )


def probe_request() -> ServiceRequest:
    """DGS10's latest observation only (`sort_order=desc&limit=1`): a key check in a few bytes."""
    return ServiceRequest(
        service=NAME,
        dataset="observations",
        path="/fred/series/observations",
        params={"series_id": "DGS10", "file_type": "json", "sort_order": "desc", "limit": "1"},
        subjects=("DGS10",),
    )


def parse_observations(payload: Any) -> list[Observation]:
    return [obs for row in _rows(payload) if (obs := _observation(row)) is not None]


def parse_latest(payload: Any) -> list[Observation]:
    """The newest observation that has a value, as a list of at most one: what the report's
    indicator slot reads (`parse_observations` then its last valued row, without building the
    years before it: a warm run parses every series again). Same checks, same answer."""
    for row in reversed(_rows(payload)):
        obs = _observation(row)
        if obs is not None and obs.value is not None:
            return [obs]
    return []


def _rows(payload: Any) -> list[Any]:
    rows = payload.get("observations") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise BadResponse(NAME, "observations payload has no observations list")
    return rows


def _observation(row: Any) -> Observation | None:
    """One row as an observation (its value None for FRED's "."); None for a row without a date."""
    if not isinstance(row, dict):
        return None
    day = as_date(row.get("date"))
    return None if day is None else Observation(date=day, value=as_float(row.get("value")))


def refusal(request: ServiceRequest, reply: Reply) -> ServiceError | None:
    message = upstream_message(reply.body, "error_message")
    lowered = message.lower()
    if reply.status in (400, 401, 403) and "api_key" in lowered and "series" not in lowered:
        return BadCredential(
            NAME, f"HTTP {reply.status} for {request.path}: {message}", dataset=request.dataset
        )
    return None


def classify(request: ServiceRequest, status: int, body: Any) -> Verdict:
    if status == 400:
        message = upstream_message(body, "error_message")
        if "does not exist" in message.lower():
            return "negative"
    return parsed_verdict(request, status, body, parse_observations)


SPEC = ServiceSpec(
    name=NAME,
    default_base_urls={"default": "https://api.stlouisfed.org"},
    datasets={"observations": DatasetSpec("observations", ttl=timedelta(days=1))},
    rate_per_second=1.2,  # ~2 req/s enforced; a slow first connection bunches arrivals
    max_connections=2,
    timeout_seconds=15.0,
    credentials=(Credential("FRED_API_KEY", "query", "api_key"),),
    credential_required=True,
    classify=classify,
    refusal=refusal,
    probe=probe_request,
)
