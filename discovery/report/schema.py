"""The report's JSON Schema (shipped in the package) and its validation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any


def load_schema() -> dict[str, Any]:
    text = resources.files("discovery.report").joinpath("report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_report(report: Mapping[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` when the report breaks the shipped schema."""
    import jsonschema

    jsonschema.validate(report, load_schema())
