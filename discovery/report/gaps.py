"""The one `Gap` type: a report slot that holds no value, what it is about and why.

Whether a gap is a fault (exit 3) or a fact about the data, and the remedy shown for it, come
from the one reason table (`services.reasons`); nothing here restates them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.reasons import REASONS, Reason
from services.recordclass import record

UNKNOWN = Reason("fault", "Run again; report it if it stays.")


def reason_of(name: str) -> Reason:
    """The table's entry; a reason the table does not know counts as a fault (never hidden)."""
    return REASONS.get(name, UNKNOWN)


@record
class Gap:
    ticker: str | None  # the portfolio ticker it is about (None: market context)
    service: str | None
    dataset: str
    reason: str
    detail: str | None = None
    subject: str | None = None  # the symbol, series id or country set (None: the ticker)
    slot: str | None = None  # the report slot left empty (benchmark, indicator, chart, …)

    @property
    def about(self) -> str:
        return self.subject or self.ticker or self.dataset

    @property
    def is_fault(self) -> bool:
        """A gap caused by a service or by the run (exit 3), not by the data itself."""
        return reason_of(self.reason).kind == "fault"

    @property
    def fix(self) -> str:
        return reason_of(self.reason).fix

    def to_json(self) -> dict[str, Any]:
        return {
            "ticker": self.ticker,
            "service": self.service,
            "dataset": self.dataset,
            "slot": self.slot,
            "subject": self.about,
            "reason": self.reason,
            "detail": self.detail,
            "fix": self.fix,
        }


def dedupe_gaps(gaps: Sequence[Gap]) -> list[Gap]:
    """One gap per (ticker, slot, service, dataset, subject): the first reason found wins."""
    seen: set[tuple[str | None, str | None, str | None, str, str]] = set()
    out: list[Gap] = []
    for gap in gaps:
        ident = (gap.ticker, gap.slot, gap.service, gap.dataset, gap.about)
        if ident not in seen:
            seen.add(ident)
            out.append(gap)
    return out
