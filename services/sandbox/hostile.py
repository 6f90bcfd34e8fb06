"""The hostile fault modes: answers a malicious or broken upstream sends (see faults.py).

Each one streams from a generator or a small precomputed buffer, so the sandbox itself stays
small whatever size it claims: `huge` is produced chunk by chunk, `bomb` is a ~250 KB gzip body
computed once per size, `trickle` is one byte at a time.
"""

from __future__ import annotations

import asyncio
import json
import math
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from starlette.types import Receive, Send

from services.sandbox.reply import SYNTHETIC_HEADER, Reply

CHUNK = 1 << 20
CONSENT_URL = "https://guce.yahoo.com/consent?brandType=eu&done=https%3A%2F%2Ffc.yahoo.com%2F"
# Numbers a `nonfinite` answer keeps (identities and times: without them a record means nothing).
_KEPT = frozenset(
    {"timestamp", "gmtoffset", "cik_str", "firstTradeDate", "regularMarketTime", "start", "end"}
)
_SPECIALS = (math.nan, math.inf, -math.inf)


@dataclass(frozen=True)
class HostileConfig:
    huge_bytes: int = 64 << 20
    bomb_bytes: int = 256 << 20
    trickle_interval_s: float = 0.2
    trickle_max_s: float = 120.0
    offsite_url: str = "http://127.0.0.1:9"


def _headers(content_type: str, *extra: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    pairs = [("content-type", content_type), SYNTHETIC_HEADER, *extra]
    return [(k.encode(), v.encode()) for k, v in pairs]


async def _start(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def redirect(send: Send, location: str) -> None:
    headers = _headers("text/plain", ("location", location), ("content-length", "0"))
    await _start(send, 302, headers)
    await send({"type": "http.response.body", "body": b""})


@lru_cache(maxsize=2)
def bomb_body(size: int) -> bytes:
    """gzip of `size` spaces then `{}` (valid JSON, if anyone inflated it all)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * CHUNK
    parts = [packer.compress(block) for _ in range(max(1, size // CHUNK))]
    parts += [packer.compress(b"{}"), packer.flush()]
    return b"".join(parts)


async def huge(send: Send, size: int) -> None:
    """A JSON string `size` bytes long, chunked (no content-length to refuse early)."""
    await _start(send, 200, _headers("application/json"))
    await send({"type": "http.response.body", "body": b'{"pad":"', "more_body": True})
    block = b"a" * CHUNK
    for _ in range(max(1, size // CHUNK)):
        await send({"type": "http.response.body", "body": block, "more_body": True})
    await send({"type": "http.response.body", "body": b'"}'})


async def bomb(send: Send, size: int) -> None:
    body = await asyncio.get_running_loop().run_in_executor(None, bomb_body, size)
    headers = _headers(
        "application/json", ("content-encoding", "gzip"), ("content-length", str(len(body)))
    )
    await _start(send, 200, headers)
    await send({"type": "http.response.body", "body": body})


async def trickle(
    send: Send, receive: Receive, interval: float, limit: float, released: asyncio.Event
) -> None:
    """Headers at once, then a byte of body per `interval` until the client leaves (or
    `limit` passes, or the sandbox stops)."""
    await _start(send, 200, _headers("application/json"))

    async def drip() -> None:
        await send({"type": "http.response.body", "body": b"[", "more_body": True})
        loop = asyncio.get_running_loop()
        stop = loop.time() + limit
        while loop.time() < stop:
            await asyncio.sleep(interval)
            await send({"type": "http.response.body", "body": b" ", "more_body": True})
        await send({"type": "http.response.body", "body": b"]"})

    async def client_left() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks = [asyncio.ensure_future(t) for t in (drip(), client_left(), released.wait())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def deep(send: Send, depth: int = 100_000) -> None:
    body = b"[" * depth + b"]" * depth
    headers = _headers("application/json", ("content-length", str(len(body))))
    await _start(send, 200, headers)
    await send({"type": "http.response.body", "body": body})


def nonfinite(reply: Reply) -> Reply:
    """The answer with its numbers (identities and times kept) as NaN, Infinity, -Infinity."""
    try:
        value = json.loads(reply.body)
    except ValueError:
        return reply
    counter = iter(range(1 << 62))

    def walk(node: Any, key: str | None) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, bool) or not isinstance(node, (int, float)) or key in _KEPT:
            return node
        return _SPECIALS[next(counter) % 3]

    body = json.dumps(walk(value, None), allow_nan=True, separators=(",", ":")).encode()
    return Reply(reply.status, body, reply.content_type, reply.headers)
