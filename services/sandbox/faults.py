"""Fault injection: which requests of which service fail, and how.

Spec form (CLI `--fault`, env `TRADESCOUT_SANDBOX_FAULTS`, admin endpoint): `SERVICE=MODE[:RATE]`,
RATE the fraction of that service's requests hit (default 1). Hits are spread evenly and
deterministically — with rate r the n-th request is hit when floor(n·r) > floor((n-1)·r) — so a
test that sends ten requests at rate 0.3 sees exactly three faults, always the same ones.

Modes: `down` (every hit answered 503 at once: a closed port cannot be simulated per service on a
shared listener), `error` (HTTP 500), `timeout` (the request hangs past any sane client timeout),
`malformed` (HTTP 200 with truncated JSON), `drop` (headers and half the body, then the connection
is cut), `slow` (extra latency, then the normal answer).

Hostile modes (what a malicious or broken upstream does): `consent` (302 to Yahoo's consent page),
`huge` (an endless-looking JSON body, chunked, `huge_bytes` long), `bomb` (a gzip body that
inflates to `bomb_bytes`), `trickle` (headers, then one byte of body every `trickle_interval_s`),
`redirect_loop` (302 to itself, forever), `redirect_offsite` (302 to `offsite_url`, another
origin, with the request's own query — credentials included — appended), `deep` (JSON nested
100,000 levels), `nonfinite` (the normal answer with its numbers turned into NaN/Infinity).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, cast, get_args

Mode = Literal[
    "down",
    "error",
    "timeout",
    "malformed",
    "drop",
    "slow",
    "consent",
    "huge",
    "bomb",
    "trickle",
    "redirect_loop",
    "redirect_offsite",
    "deep",
    "nonfinite",
]
MODES: tuple[Mode, ...] = get_args(Mode)
ENV_VAR = "TRADESCOUT_SANDBOX_FAULTS"


class FaultSpecError(ValueError):
    """A fault spec that cannot be used; the message is one sentence for the user."""


@dataclass(frozen=True)
class FaultSpec:
    service: str
    mode: Mode
    rate: float = 1.0

    def __str__(self) -> str:
        return f"{self.service}={self.mode}:{self.rate:g}"


def parse_fault_spec(text: str, services: Iterable[str]) -> FaultSpec:
    """`fmp=error:0.3` → FaultSpec; raises FaultSpecError with one sentence otherwise."""
    known = tuple(services)
    service, sep, rest = text.strip().partition("=")
    service = service.strip()
    if not sep or not service or not rest:
        raise FaultSpecError(f"fault {text!r} is not of the form SERVICE=MODE[:RATE].")
    if service not in known:
        raise FaultSpecError(
            f"fault {text!r} names unknown service {service!r}; known: {', '.join(known)}."
        )
    mode, _, raw_rate = rest.strip().partition(":")
    if mode not in MODES:
        raise FaultSpecError(
            f"fault {text!r} has unknown mode {mode!r}; modes: {', '.join(MODES)}."
        )
    rate = 1.0
    if raw_rate:
        try:
            rate = float(raw_rate)
        except ValueError:
            rate = math.nan
        if not 0.0 < rate <= 1.0:
            raise FaultSpecError(
                f"fault {text!r} has rate {raw_rate!r}; a rate is a fraction in (0, 1]."
            )
    return FaultSpec(service, cast(Mode, mode), rate)


def parse_fault_list(text: str, services: Iterable[str]) -> list[FaultSpec]:
    """The env form: comma-separated specs (`yahoo_finance=down,fmp=error:0.3`)."""
    known = tuple(services)
    return [parse_fault_spec(part, known) for part in text.split(",") if part.strip()]


class FaultBook:
    """The active faults, one per service, each with its own request counter."""

    def __init__(self, specs: Iterable[FaultSpec] = ()) -> None:
        self._specs: dict[str, FaultSpec] = {}
        self._seen: dict[str, int] = {}
        for spec in specs:
            self.set(spec)

    def set(self, spec: FaultSpec) -> None:
        self._specs[spec.service] = spec
        self._seen[spec.service] = 0

    def clear(self, service: str | None = None) -> None:
        if service is None:
            self._specs.clear()
            self._seen.clear()
        else:
            self._specs.pop(service, None)
            self._seen.pop(service, None)

    def active(self) -> list[FaultSpec]:
        return list(self._specs.values())

    def decide(self, service: str) -> Mode | None:
        """Count one request to `service`; the fault to inject into it, if any."""
        spec = self._specs.get(service)
        if spec is None:
            return None
        n = self._seen[service] = self._seen[service] + 1
        hit = math.floor(n * spec.rate + 1e-9) > math.floor((n - 1) * spec.rate + 1e-9)
        return spec.mode if hit else None
