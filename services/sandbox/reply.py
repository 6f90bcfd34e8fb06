"""What a simulated endpoint receives (`Call`) and returns (`Reply`): plain data, no I/O.

Endpoint functions are pure — `Call` in, `Reply` out — so they can be tested without sockets and
their encoded answers cached: the same call on the same day is the same reply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any

SYNTHETIC_HEADER = ("x-tradescout-synthetic", "true")


@dataclass(frozen=True)
class Call:
    """One request to a simulated service, reduced to what endpoints may look at."""

    path: str  # below the service prefix, e.g. "/v8/finance/chart/AAPL"
    params: Mapping[str, str]  # query parameters (the last value of a repeated name wins)
    headers: Mapping[str, str]  # lower-case names
    now: datetime  # aware UTC: the injected clock
    match: Mapping[str, str] = field(default_factory=dict)  # path parameters

    @property
    def today(self) -> date:
        return self.now.date()


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @cached_property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """ASGI headers, built once per (cached) reply."""
        return [
            (b"content-type", self.content_type.encode()),
            (b"content-length", str(len(self.body)).encode()),
            (SYNTHETIC_HEADER[0].encode(), SYNTHETIC_HEADER[1].encode()),
            *((k.encode(), v.encode()) for k, v in self.headers),
        ]


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def json_reply(payload: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, encode(payload), "application/json", headers)


def text_reply(text: str, status: int, content_type: str = "text/plain; charset=utf-8") -> Reply:
    return Reply(status, text.encode(), content_type)
