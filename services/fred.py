"""FRED series observations: macro indicators (FEDFUNDS, DGS10, CPIAUCSL, UNRATE, VIXCLS).

Key in the `api_key` query parameter. Values are strings and `"."` marks a day without a value.
An unknown series answers HTTP 400 "...series does not exist": a negative result; any other 400
(a bad key) is a BadResponse and is not retried.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from services._common import as_date, as_float, bad_shape, default_verdict, upstream_message
from services.errors import BadResponse
from services.records import Observation
from services.spec import DatasetSpec, ServiceRequest, ServiceSpec, Verdict

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


def parse_observations(payload: Any) -> list[Observation]:
    rows = payload.get("observations") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise BadResponse(NAME, "observations payload has no observations list")
    result = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        day = as_date(row.get("date"))
        if day is None:
            continue
        result.append(Observation(date=day, value=as_float(row.get("value"))))
    return result


def classify(request: ServiceRequest, status: int, body: Any) -> Verdict:
    if status == 400:
        message = upstream_message(body, "error_message")
        if "does not exist" in message.lower():
            return "negative"
    verdict = default_verdict(request, status, body)
    if verdict == "ok":
        try:
            parse_observations(body)
        except BadResponse as exc:
            raise bad_shape(request, exc.detail) from None
    return verdict


SPEC = ServiceSpec(
    name=NAME,
    default_base_urls={"default": "https://api.stlouisfed.org"},
    datasets={"observations": DatasetSpec("observations", ttl=timedelta(days=1))},
    rate_per_second=1.2,  # ~2 req/s enforced; a slow first connection bunches arrivals
    max_connections=2,
    timeout_seconds=15.0,
    credential_env="FRED_API_KEY",
    credential_required=True,
    credential_placement="query",
    credential_name="api_key",
    classify=classify,
)
