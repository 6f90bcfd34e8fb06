"""Cache values: JSON envelopes, never pickle (a cache directory must not be able to run code)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["ok", "negative"]
ENVELOPE_VERSION = 1


class CorruptEntry(Exception):
    """An entry whose bytes are not a valid envelope or whose payload hash does not match."""


def payload_sha256(payload: Any) -> str:
    """Hash of the canonical JSON form of a payload (key order does not matter)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


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

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, verify: bool = True) -> Envelope:
        """Decode and (by default) verify the payload hash; any flaw is `CorruptEntry`."""
        try:
            obj = json.loads(data)
            if not isinstance(obj, dict) or obj.get("v") != ENVELOPE_VERSION:
                raise CorruptEntry("not a tradescout envelope")
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
        if verify and payload_sha256(env.payload) != env.sha256:
            raise CorruptEntry("payload sha256 mismatch")
        return env
