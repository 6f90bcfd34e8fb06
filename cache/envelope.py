"""Cache values: JSON envelopes, never pickle (a cache directory must not be able to run code).

Version 2 layout (compact UTF-8 JSON, the payload last):

    {"v":2,"sha256":"<64 hex>","key":…,"service":…,"dataset":…,"status":…,
     "fetched_at":…,"expires_at":…,"request":{…},"upstream":…,"payload":<canonical payload>}

The sha256 covers every byte after its own 64 hex digits (the fixed `{"v":2,"sha256":"` before
them is checked as is), so an edited header
(an `expires_at` moved to 2999) fails the check as surely as an edited payload. Checking it
hashes the stored bytes: nothing is re-serialized. Because the digest sits at a fixed offset and
the payload comes last, a reader can verify an entry and decode only its header (planning asks
"fresh until when?") and decode the payload later, only if it is used.

Version 1 envelopes hashed the payload alone: their header is unprotected, so they are never
served (`LegacyEntry`: a miss, refetched and overwritten); `cache verify` counts them and
`cache optimize` removes them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

import orjson

from cache.errors import CorruptEntry, LegacyEntry

Status = Literal["ok", "negative"]
ENVELOPE_VERSION = 2

_PREFIX = b'{"v":2,"sha256":"'
_DIGEST_END = len(_PREFIX) + 64
_AFTER_DIGEST = b'",'
_PAYLOAD_MARK = b',"payload":'
_LEGACY_PREFIXES = (b'{"v":1,',)
LEGACY_PROBE_BYTES = 8  # enough leading bytes to tell a version-1 envelope from the others
_HEADER_FIELDS = frozenset(
    {
        "v",
        "sha256",
        "key",
        "service",
        "dataset",
        "status",
        "fetched_at",
        "expires_at",
        "request",
        "upstream",
    }
)
_ALL_FIELDS = _HEADER_FIELDS | {"payload"}


def canonical_json(payload: Any) -> str:
    """The canonical JSON form of a payload: sorted keys, no spaces, UTF-8 as is.

    orjson does the common case several times faster than `json`; payloads it cannot encode
    exactly (integers beyond 64 bits, NaN/Infinity, which it would silently turn into null) take
    the standard library path, which gives the same bytes for everything orjson accepts.
    """
    try:
        fast = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        # orjson writes NaN/Infinity as null: only output that has a null can hide one.
        if b"null" not in fast or not has_special_floats(payload):
            return fast.decode("utf-8")
    except (orjson.JSONEncodeError, TypeError):
        pass
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def has_special_floats(value: Any) -> bool:
    """NaN/Infinity anywhere in a JSON tree (orjson would write them as null)."""
    stack = [value]
    while stack:  # iterative: a deep tree must not hit the recursion limit
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def loads(data: bytes | str) -> Any:
    """Decode JSON: orjson, or the standard library for what orjson refuses (such as NaN).

    Nesting beyond orjson's limit (1024) is refused outright, never handed to the recursive
    standard-library decoder (a planted 100,000-deep document would raise RecursionError).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise ValueError("JSON nested too deep") from None
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def utcnow() -> datetime:
    return datetime.now(UTC)


TAG_STATUS: dict[Status, float] = {"ok": 0.25, "negative": 0.5}
"""The fraction of a tag that names the entry's status (a whole-number tag: an older row)."""


def expiry_tag(expires_at: datetime, status: Status = "ok") -> float:
    """The diskcache `tag` of an entry: its expiry in epoch seconds rounded *up*, plus a
    fraction naming its status (`TAG_STATUS`).

    Rounding up makes `tag <= now` a safe test for "expired" (never early by a fraction of a
    second), so the optimizer can select expired rows from the tag index without decoding them;
    the status lets planning tell a fresh value from a fresh "nothing known" without reading
    the entry (`tag_head`).
    """
    return math.ceil(expires_at.timestamp()) + TAG_STATUS[status]


def tag_head(tag: object, now: datetime) -> tuple[bool, Status] | None:
    """(fresh, status) from a tag `expiry_tag` wrote; None for a tag that does not name a
    status (an older row: its header must be read). `fresh` errs towards stale within the last
    second of the entry's life (the expiry was rounded up), never the other way."""
    if type(tag) is not float or not math.isfinite(tag):
        return None
    whole = math.floor(tag)
    status = next((s for s, f in TAG_STATUS.items() if tag - whole == f), None)
    if status is None:
        return None
    return now.timestamp() < whole - 1, status


def is_legacy(prefix: bytes) -> bool:
    """Whether stored bytes starting with `prefix` are an envelope of an older version."""
    return prefix.startswith(_LEGACY_PREFIXES)


def _digest(data: bytes) -> str:
    """sha256 of an encoded envelope's bytes after its digest (the fixed version prefix before
    the digest is checked byte for byte instead)."""
    return hashlib.sha256(memoryview(data)[_DIGEST_END:]).hexdigest()


def _dumps_compact(obj: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON in insertion order (orjson; the standard library for the rest)."""
    try:
        return orjson.dumps(obj)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _decode_payload(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return loads(raw)  # NaN/Infinity, or the sentence for a nesting beyond the limit
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptEntry(f"undecodable payload: {exc.__class__.__name__}") from None


@dataclass(frozen=True)
class Envelope:
    """One cached answer of a service: what was asked, what came back, when, until when.

    `payload` is decoded on first use from `payload_json` (the exact stored bytes, already
    covered by the verified hash): reading only the header costs no payload decode.
    """

    key: str
    service: str
    dataset: str
    status: Status
    fetched_at: datetime
    expires_at: datetime
    sha256: str
    payload_json: bytes = field(repr=False)
    request: dict[str, Any] = field(default_factory=dict)
    upstream: str = "live"

    def is_fresh(self, now: datetime) -> bool:
        return now < self.expires_at

    @property
    def synthetic(self) -> bool:
        return self.upstream == "sandbox"

    @cached_property
    def payload(self) -> Any:
        """The decoded payload (`CorruptEntry` if its bytes are not JSON)."""
        return _decode_payload(self.payload_json)

    def header(self) -> dict[str, Any]:
        """The header fields in their stored order (everything but `v`, `sha256`, `payload`)."""
        return {
            "key": self.key,
            "service": self.service,
            "dataset": self.dataset,
            "status": self.status,
            "fetched_at": self.fetched_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "request": self.request,
            "upstream": self.upstream,
        }

    def to_bytes(self) -> bytes:
        """The stored form (see the module docstring); the digest is computed over it."""
        return _encode(self.header(), self.payload_json)

    @classmethod
    def build(
        cls,
        *,
        key: str,
        service: str,
        dataset: str,
        status: Status,
        payload: Any,
        fetched_at: datetime,
        expires_at: datetime,
        request: dict[str, Any],
        upstream: str,
    ) -> tuple[Envelope, bytes]:
        """A new envelope and its bytes, the payload serialized once."""
        payload_json = canonical_json(payload).encode("utf-8")
        header = {
            "key": key,
            "service": service,
            "dataset": dataset,
            "status": status,
            "fetched_at": fetched_at.isoformat(),
            "expires_at": expires_at.isoformat(),
            "request": request,
            "upstream": upstream,
        }
        data = _encode(header, payload_json)
        env = cls(
            key=key,
            service=service,
            dataset=dataset,
            status=status,
            fetched_at=fetched_at,
            expires_at=expires_at,
            sha256=data[len(_PREFIX) : _DIGEST_END].decode("ascii"),
            payload_json=payload_json,
            request=request,
            upstream=upstream,
        )
        env.__dict__["payload"] = payload  # already decoded: the cached_property's slot
        return env, data

    @classmethod
    def from_bytes(cls, data: bytes, *, verify: bool = True, decode: bool = True) -> Envelope:
        """Check the hash (unless `verify` is False) and decode the header; with `decode`, the
        payload too. Any flaw is `CorruptEntry`; an older version is `LegacyEntry`.

        Written as one straight path: every read of the cache goes through it.
        """
        if type(data) is not bytes or not data.startswith(_PREFIX):
            if isinstance(data, bytes) and is_legacy(data[:LEGACY_PROBE_BYTES]):
                raise LegacyEntry("envelope version 1 (header not covered by its hash)")
            raise CorruptEntry("not a tradescout envelope")
        if data[_DIGEST_END : _DIGEST_END + 2] != _AFTER_DIGEST or data[-1:] != b"}":
            raise CorruptEntry("not a tradescout envelope")
        stored = data[len(_PREFIX) : _DIGEST_END].decode("ascii", "replace")
        if verify and _digest(data) != stored:
            raise CorruptEntry("envelope sha256 mismatch")
        head, payload_json = _split(data)
        try:
            fetched_at = datetime.fromisoformat(head["fetched_at"])
            expires_at = datetime.fromisoformat(head["expires_at"])
            env = cls(
                key=str(head["key"]),
                service=str(head["service"]),
                dataset=str(head["dataset"]),
                status=head["status"],
                fetched_at=fetched_at,
                expires_at=expires_at,
                sha256=str(head["sha256"]),
                payload_json=payload_json,
                request=dict(head["request"] or {}),
                upstream=str(head["upstream"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptEntry(f"undecodable envelope: {exc.__class__.__name__}") from None
        if fetched_at.tzinfo is None or expires_at.tzinfo is None:
            raise CorruptEntry("timestamp has no UTC offset")
        if head["v"] != ENVELOPE_VERSION or env.sha256 != stored:
            raise CorruptEntry("envelope sha256 mismatch")
        if env.status not in ("ok", "negative"):
            raise CorruptEntry(f"unknown status {env.status!r}")
        if decode:
            env.__dict__["payload"] = _decode_payload(payload_json)
        return env


def _encode(header: dict[str, Any], payload_json: bytes) -> bytes:
    """`{"v":2,"sha256":"<digest>",<header>,"payload":<payload>}` with its digest."""
    head = _dumps_compact(header)
    body = b"".join((_AFTER_DIGEST, head[1:-1], _PAYLOAD_MARK, payload_json, b"}"))
    return b"".join((_PREFIX, hashlib.sha256(body).hexdigest().encode("ascii"), body))


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, payload bytes) of a version-2 envelope whose framing was checked.

    The first `,"payload":` outside a string is the payload field: inside a JSON string a `"`
    is escaped, and one inside the nested `request` object leaves the header slice unbalanced,
    so it fails to parse and the whole envelope is decoded instead (slower, same answer).
    """
    at = data.find(_PAYLOAD_MARK, _DIGEST_END)
    if at > 0:
        try:
            head = orjson.loads(data[:at] + b"}")
        except orjson.JSONDecodeError:
            head = None
        if type(head) is dict and head.keys() == _HEADER_FIELDS:
            return head, data[at + len(_PAYLOAD_MARK) : -1]
    try:
        whole = loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptEntry(f"undecodable envelope: {exc.__class__.__name__}") from None
    if not isinstance(whole, dict) or set(whole) != _ALL_FIELDS:
        raise CorruptEntry("unexpected fields in envelope")
    payload = whole.pop("payload")
    return whole, canonical_json(payload).encode("utf-8")
