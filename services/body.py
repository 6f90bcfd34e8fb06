"""Reading an upstream body safely: decoded bytes counted as they stream, JSON depth capped,
non-finite numbers kept as null.

Why our own decoding: httpx inflates each network chunk whole, so a 64 KB slice of a gzip bomb
becomes ~64 MB in one step before anyone can count it. Here `Inflater` asks zlib for at most
`STEP` bytes at a time (`max_length` + `unconsumed_tail`), so the cap is checked every 64 KB of
output and memory stays at a few chunks whatever the compression ratio. (A browser-impersonating
transport hands over bytes curl already decoded, in curl's own small write chunks.)

JSON: orjson refuses nesting past 1024 levels with an error (never a RecursionError), but the
cache's encoder stops at 255, so answers deeper than `MAX_DEPTH` are refused too ("too deep").
`NaN`/`Infinity` are not JSON, yet Python-made payloads contain them: they are read as null (the
parsers' "absent" value), never a crash and never a dropped record.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from typing import Any

import orjson

STEP = 64 * 1024
MAX_DEPTH = 64
ACCEPT_ENCODING = "gzip, deflate"  # the encodings `Inflater` can bound

_NONFINITE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|(-?Infinity|NaN)')


class BodyTooLarge(Exception):
    """The decoded body passed its cap."""


class BodyTooDeep(Exception):
    """The JSON nests deeper than MAX_DEPTH."""


class BodyMalformed(Exception):
    """Not JSON, or an encoding that cannot be decoded."""


class Inflater:
    """Decodes one `Content-Encoding` chunk by chunk, at most STEP bytes of output at a time."""

    def __init__(self, encoding: str | None) -> None:
        coding = (encoding or "identity").strip().lower()
        if coding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            # br, zstd, or a chain such as "gzip, gzip": not something we asked for
            raise BodyMalformed(f"unsupported content-encoding {coding[:40]!r}")
        self._coding = coding
        self._zlib: Any = None
        if coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def _start_deflate(self, data: bytes) -> None:
        # "deflate" is meant to be zlib-wrapped but is often sent raw: the header tells.
        wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._coding in ("", "identity"):
            if data:
                yield data
            return
        if self._zlib is None:
            if not data:
                return
            self._start_deflate(data)
        try:
            out = self._zlib.decompress(data, STEP)
            while True:
                if out:
                    yield out
                tail = self._zlib.unconsumed_tail
                if not tail:
                    return
                out = self._zlib.decompress(tail, STEP)
        except zlib.error:
            raise BodyMalformed("corrupt compressed body") from None


class Collector:
    """Accumulates decoded chunks and refuses to grow past `cap` bytes."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.size = 0
        self._chunks: list[bytes] = []

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            self._chunks.clear()
            raise BodyTooLarge(f"too large: over {self.cap:,} bytes decoded")
        self._chunks.append(chunk)

    def value(self) -> bytes:
        return b"".join(self._chunks)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit` (iterative: no recursion whatever the depth)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc).lower():
            raise BodyTooDeep(f"too deep: JSON nested over {MAX_DEPTH} levels") from None
        raise


def decode_json(data: bytes) -> Any:
    """The JSON value of `data`; raises BodyTooDeep or BodyMalformed."""
    try:
        value = _loads(data)
    except orjson.JSONDecodeError:
        if b"NaN" not in data and b"Infinity" not in data:
            raise BodyMalformed("malformed JSON") from None
        fixed = _NONFINITE.sub(lambda m: b"null" if m.group(1) else m.group(0), data)
        try:
            value = _loads(fixed)
        except orjson.JSONDecodeError:
            raise BodyMalformed("malformed JSON") from None
    if isinstance(value, (dict, list)) and _depth_exceeds(value, MAX_DEPTH):
        raise BodyTooDeep(f"too deep: JSON nested over {MAX_DEPTH} levels")
    return value


def looks_like_json(data: bytes) -> bool:
    head = data[:64].lstrip()
    return head[:1] in (b"{", b"[")
