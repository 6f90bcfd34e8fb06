"""Small helpers the service modules share: lenient number/date reading and the default verdict.

Parsers read what is there and leave the rest None; a payload whose *structure* is wrong is a
`BadResponse` (never cached), not a silently empty record.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from services.errors import BadResponse
from services.spec import ServiceRequest, Verdict


def as_float(value: Any) -> float | None:
    """A finite float from a number or numeric string; None for null, "", "None", "-", "."."""
    if type(value) is float:  # the common case in price arrays: skip the generic checks
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an integer no float can hold (JSON allows any length)
            return None
    elif isinstance(value, str):
        text = value.strip()
        if text in ("", ".", "-", "None", "null", "N/A"):
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_int(value: Any) -> int | None:
    number = as_float(value)
    return None if number is None else int(number)


def padded(values: Any, n: int) -> list[Any]:
    """A column of a columnar payload as exactly `n` cells: None past its end, all None when
    it is not a list (the aligned arrays of a chart or of SEC's `filings.recent`)."""
    if not isinstance(values, list):
        return [None] * n
    return values[:n] + [None] * (n - len(values))


def as_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def as_date(value: Any) -> date | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def from_unix(value: Any) -> datetime | None:
    seconds = as_float(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def upstream_message(body: Any, *keys: str) -> str:
    """A short, single-line message from an error body (never the whole body)."""
    if isinstance(body, dict):
        for key in keys:
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return " ".join(value.split())[:200]
        error = body.get("error")
        if isinstance(error, dict):
            return upstream_message(error, "description", "message", "code")
    return ""


def refusal_message(body: Any, text: str, *keys: str) -> str:
    """The service's own words in a refusal: a JSON message field, else the page's title or
    first line (single-line, at most 200 characters)."""
    message = upstream_message(body, *keys)
    if message:
        return message
    lowered = text.lower()
    start = lowered.find("<title>")
    if start >= 0:
        end = lowered.find("</title>", start)
        text = text[start + 7 : end if end > start else start + 207]
    elif "<" in text[:100]:
        return "an HTML page"
    return " ".join(text.split())[:200]


def default_verdict(request: ServiceRequest, status: int, body: Any) -> Verdict:
    """2xx → ok; 404 → not found (negative); any other status → BadResponse (never retried)."""
    if 200 <= status < 300:
        return "ok"
    if status == 404:
        return "negative"
    detail = upstream_message(body, "message", "error_message", "Error Message", "detail")
    suffix = f": {detail}" if detail else ""
    raise BadResponse(
        request.service, f"HTTP {status} for {request.path}{suffix}", dataset=request.dataset
    )


def parsed_verdict(
    request: ServiceRequest,
    status: int,
    body: Any,
    parse: Callable[[Any], object],
    *,
    empty: Verdict = "ok",
) -> Verdict:
    """`default_verdict`, and a 2xx body through the module's own parser before it is cached:
    what the parser refuses is a bad response naming the path (never cached as ok); a body that
    parses to nothing (None, an empty list) is `empty` (`negative` where that means "unknown")."""
    verdict = default_verdict(request, status, body)
    if verdict != "ok":
        return verdict
    try:
        parsed = parse(body)
    except BadResponse as exc:
        raise bad_shape(request, exc.detail) from None
    return verdict if parsed else empty


def bad_shape(request: ServiceRequest, what: str) -> BadResponse:
    return BadResponse(
        request.service, f"unexpected payload for {request.path}: {what}", dataset=request.dataset
    )
