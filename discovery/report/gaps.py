"""The one `Gap` type: a report slot that could not be filled, with its reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from discovery.plan.planner import PlannedGap

INHERENT_GAP_REASONS = frozenset({"not_found", "not_applicable"})


@dataclass(frozen=True)
class Gap:
    ticker: str | None
    service: str | None
    dataset: str
    reason: str
    detail: str | None = None
    subject: str | None = None  # the ticker, or the market series/coin (None: the ticker)

    @classmethod
    def from_planned(cls, gap: PlannedGap) -> Gap:
        return cls(gap.ticker, gap.service, gap.dataset, gap.reason, gap.detail, gap.subject)

    @property
    def about(self) -> str:
        return self.subject or self.ticker or self.dataset

    @property
    def is_fault(self) -> bool:
        """A gap caused by a service or by the run (exit 3), not by the data itself."""
        return self.reason not in INHERENT_GAP_REASONS

    def to_json(self) -> dict[str, Any]:
        return {
            "ticker": self.ticker,
            "service": self.service,
            "dataset": self.dataset,
            "reason": self.reason,
            "detail": self.detail,
            "subject": self.about,
        }


def dedupe_gaps(gaps: Sequence[Gap]) -> list[Gap]:
    """One gap per (ticker, service, dataset, subject): the first reason found wins."""
    seen: set[tuple[str | None, str | None, str, str]] = set()
    out: list[Gap] = []
    for gap in gaps:
        ident = (gap.ticker, gap.service, gap.dataset, gap.about)
        if ident not in seen:
            seen.add(ident)
            out.append(gap)
    return out
