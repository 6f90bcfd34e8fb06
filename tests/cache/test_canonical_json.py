"""Canonical JSON (the bytes that are hashed and stored) is identical on orjson's fast path and
the standard library's, including the values orjson cannot write faithfully."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cache.envelope import Envelope, canonical_json, loads


def reference(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    "payload",
    [
        {"b": 1, "a": [1.5, 2, "é", None, True], "c": {"z": 0.1, "y": -0.0}},
        {"x": 1e300, "w": 1 / 3, "s": '\u2028\x7f"quote"'},
        {"big": 2**70},  # beyond 64 bits: orjson refuses, json writes it exactly
        {"nan": float("nan"), "n": None},  # orjson would write null
        {"inf": [float("inf"), float("-inf")]},
        [],
        "text",
    ],
)
def test_same_bytes_as_the_standard_library(payload: Any) -> None:
    assert canonical_json(payload) == reference(payload)


def test_nan_survives_a_round_trip_through_an_envelope() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 11, 21, tzinfo=UTC)
    env, data = Envelope.build(
        key="k",
        service="fred",
        dataset="observations",
        status="ok",
        payload={"v": float("nan")},
        fetched_at=now,
        expires_at=now + timedelta(days=1),
        request={},
        upstream="live",
    )
    back = Envelope.from_bytes(data)
    assert back.sha256 == env.sha256
    assert back.payload_json == canonical_json({"v": float("nan")}).encode()
    assert json.dumps(back.payload) == '{"v": NaN}'
    assert loads(b'{"a": NaN}')["a"] != loads(b'{"a": NaN}')["a"]  # NaN, not null
