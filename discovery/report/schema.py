"""The report's JSON Schema (shipped in the package) and its validation.

Every report is validated before it is written. The check runs on jsonschema-rs (compiled; ~1 ms
against ~250 ms for the pure-Python validator, which dominated a warm run); only a report that
fails it is run through `jsonschema` as well, for the same detailed `ValidationError` as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import orjson


def load_schema() -> dict[str, Any]:
    text = resources.files("discovery.report").joinpath("report.schema.json").read_bytes()
    schema: dict[str, Any] = orjson.loads(text)
    return schema


@cache
def _fast_validator() -> Any:
    import jsonschema_rs

    return jsonschema_rs.validator_for(load_schema(), offline=True)


def validate_report(report: Mapping[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` when the report breaks the shipped schema."""
    validator = _fast_validator()
    if validator.is_valid(report):
        return
    import jsonschema

    jsonschema.validate(report, load_schema())
    # The two validators disagree (a regex dialect, say): the stricter verdict stands.
    first = next(iter(validator.iter_errors(report)))
    raise jsonschema.ValidationError(str(first.message))
