"""Cache values: JSON envelopes, never pickle (a cache directory must not be able to run code)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

Status = Literal["ok", "negative"]
ENVELOPE_VERSION = 1


class CorruptEntry(Exception):
    """An entry whose bytes are not a valid envelope or whose payload hash does not match."""


def canonical_json(payload: Any) -> str:
    """The canonical JSON form of a payload: sorted keys, no spaces, UTF-8 as is.

    orjson does the common case several times faster than `json`; payloads it cannot encode
    exactly (integers beyond 64 bits, NaN/Infinity, which it would silently turn into null) take
    the standard library path, which gives the same bytes for everything orjson accepts.
    """
    try:
        fast = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        # orjson writes NaN/Infinity as null: only output that has a null can hide one.
        if b"null" not in fast or not _has_special_floats(payload):
            return fast.decode("utf-8")
    except (orjson.JSONEncodeError, TypeError):
        pass
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _has_special_floats(value: Any) -> bool:
    """NaN/Infinity anywhere in a JSON tree (orjson would write them as null)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_special_floats(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_special_floats(v) for v in value)
    return False


def loads(data: bytes | str) -> Any:
    """Decode JSON (orjson; the standard library for what orjson refuses, such as NaN)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def payload_sha256(payload: Any) -> str:
    """Hash of the canonical JSON form of a payload (key order does not matter)."""
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


_HEADER_FIELDS = (
    "v",
    "key",
    "service",
    "dataset",
    "status",
    "fetched_at",
    "expires_at",
    "sha256",
    "request",
    "upstream",
)
_ALL_FIELDS = frozenset((*_HEADER_FIELDS, "payload"))
_PAYLOAD_MARK = ',"payload":'
_PAYLOAD_MARK_BYTES = _PAYLOAD_MARK.encode()


def _header_prefix(header: dict[str, Any]) -> str:
    """`{...header...,"payload":` exactly as `encode` writes it."""
    try:  # orjson writes compact UTF-8 in insertion order, as json.dumps does with these options
        text = orjson.dumps(header).decode("utf-8")
    except (orjson.JSONEncodeError, TypeError):
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False)
    return text[:-1] + _PAYLOAD_MARK


def _payload_bytes_match(data: bytes, sha: str) -> bool:
    """Fast path: hash the stored canonical payload bytes instead of re-serializing the payload.

    `encode` writes the payload last, after the first `,"payload":` (header strings cannot hold
    that sequence unescaped). A slice that is not exactly the canonical payload (bytes written
    some other way, a request with a "payload" field) cannot match the hash by accident, and the
    caller then falls back to re-serializing the decoded payload.
    """
    if not isinstance(data, bytes) or not data.endswith(b"}"):
        return False
    at = data.find(_PAYLOAD_MARK_BYTES)
    if at < 0:
        return False
    return hashlib.sha256(data[at + len(_PAYLOAD_MARK_BYTES) : -1]).hexdigest() == sha


def utcnow() -> datetime:
    return datetime.now(UTC)


def expiry_tag(expires_at: datetime) -> int:
    """The diskcache `tag` of an entry: its expiry in epoch seconds, rounded *up*.

    Rounding up makes `tag <= now` a safe test for "expired" (never early by a fraction of a
    second), so the optimizer can select expired rows from the tag index without decoding them.
    """
    return math.ceil(expires_at.timestamp())


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise CorruptEntry("timestamp is not a string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise CorruptEntry("timestamp has no UTC offset")
    return parsed


@dataclass(frozen=True)
class Envelope:
    """One cached answer of a service: what was asked, what came back, when, until when."""

    key: str
    service: str
    dataset: str
    status: Status
    payload: Any
    fetched_at: datetime
    expires_at: datetime
    sha256: str
    request: dict[str, Any] = field(default_factory=dict)
    upstream: str = "live"

    def is_fresh(self, now: datetime) -> bool:
        return now < self.expires_at

    @property
    def synthetic(self) -> bool:
        return self.upstream == "sandbox"

    def to_json(self) -> dict[str, Any]:
        return {
            "v": ENVELOPE_VERSION,
            "key": self.key,
            "service": self.service,
            "dataset": self.dataset,
            "status": self.status,
            "fetched_at": self.fetched_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "sha256": self.sha256,
            "request": self.request,
            "upstream": self.upstream,
            "payload": self.payload,
        }

    def to_bytes(self, canonical_payload: str | None = None) -> bytes:
        """Compact JSON, the header first and the canonical payload last.

        `canonical_payload` (the `canonical_json` of the payload, already computed for its hash)
        saves serializing the payload twice.
        """
        header = self.to_json()
        del header["payload"]
        body = canonical_json(self.payload) if canonical_payload is None else canonical_payload
        return (_header_prefix(header) + body + "}").encode("utf-8")

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
        """A new envelope and its bytes, the payload serialized once (for hash and body)."""
        canonical = canonical_json(payload)
        env = cls(
            key=key,
            service=service,
            dataset=dataset,
            status=status,
            payload=payload,
            fetched_at=fetched_at,
            expires_at=expires_at,
            sha256=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
            request=request,
            upstream=upstream,
        )
        return env, env.to_bytes(canonical)

    @classmethod
    def from_bytes(cls, data: bytes, *, verify: bool = True) -> Envelope:
        """Decode and (by default) verify the payload hash; any flaw is `CorruptEntry`."""
        try:
            obj = loads(data)
            if not isinstance(obj, dict) or obj.get("v") != ENVELOPE_VERSION:
                raise CorruptEntry("not a tradescout envelope")
            if not set(obj) <= _ALL_FIELDS:
                raise CorruptEntry("unexpected fields in envelope")
            env = cls(
                key=str(obj["key"]),
                service=str(obj["service"]),
                dataset=str(obj["dataset"]),
                status=obj["status"],
                payload=obj["payload"],
                fetched_at=_parse_time(obj["fetched_at"]),
                expires_at=_parse_time(obj["expires_at"]),
                sha256=str(obj["sha256"]),
                request=dict(obj.get("request") or {}),
                upstream=str(obj.get("upstream", "live")),
            )
        except CorruptEntry:
            raise
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise CorruptEntry(f"undecodable envelope: {exc.__class__.__name__}") from None
        if env.status not in ("ok", "negative"):
            raise CorruptEntry(f"unknown status {env.status!r}")
        if (
            verify
            and not _payload_bytes_match(data, env.sha256)
            and payload_sha256(env.payload) != env.sha256
        ):
            raise CorruptEntry("payload sha256 mismatch")
        return env
