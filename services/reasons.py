"""Every gap reason, once: whether it is a fact about the data or a fault, and its fix.

The report, the summary, `tradescout services` and `doctor` all read this table, so a reason and
its one-sentence remedy are stated in exactly one place. Inherent reasons describe the data (the
service does not know the subject) and do not make the exit code 3; faults do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from services.recordclass import record

Kind = Literal["inherent", "fault"]


@record
class Reason:
    kind: Kind
    fix: str


REASONS: Mapping[str, Reason] = {
    # --- inherent: facts about the data
    "not_found": Reason("inherent", "Nothing to fix: the service does not know this subject."),
    "no_data": Reason("inherent", "Nothing to fix: the service has no usable data for it."),
    "not_applicable": Reason("inherent", "Nothing to fix: this dataset does not apply to it."),
    # --- faults: something kept a service from answering
    "offline": Reason("fault", "Run without --offline to fetch what the cache lacks."),
    "not_configured": Reason(
        "fault", "Set the service's key or identity variable (see README), or leave it disabled."
    ),
    "unavailable": Reason("fault", "The service is down or unreachable; run again later."),
    "circuit_open": Reason(
        "fault", "The service failed repeatedly and was paused for this run; run again later."
    ),
    "rate_limited": Reason(
        "fault", "The service kept answering 429; run again later or lower its rate_per_second."
    ),
    "quota_exhausted": Reason(
        "fault", "Today's quota is spent; run again after midnight UTC or use a bigger plan."
    ),
    "bad_response": Reason(
        "fault", "The service sent an answer tradescout cannot use; run again later."
    ),
    "bad_identity": Reason(
        "fault", 'Set SEC_EDGAR_USER_AGENT to your name and e-mail ("Jane Doe jane@x.org").'
    ),
    "rate_blocked": Reason(
        "fault", "SEC blocked this machine for exceeding 10 requests/s; wait 10 minutes."
    ),
    "bad_credential": Reason(
        "fault", "The service refused the key: check or renew it in its environment variable."
    ),
    "plan_limited": Reason(
        "fault", "Outside your FMP plan; Alpha Vantage was tried instead (upgrade to avoid it)."
    ),
    "blocked": Reason(
        "fault", "Yahoo took tradescout for a bot; wait for the cool-down (15 min) to end."
    ),
    "consent_required": Reason(
        "fault", "Yahoo asks for cookie consent (EU); accept it once at yahoo.com in a browser."
    ),
    "memory_ceiling": Reason(
        "fault", "The memory limit was reached; raise --memory-limit-mb or run again."
    ),
    "cache_evicted": Reason(
        "fault", "A cache entry was evicted mid-run; raise cache_size_limit_mb and run again."
    ),
    "cik_map_unavailable": Reason(
        "fault", "SEC's ticker map could not be had, so no filings were asked; run again later."
    ),
    "fx_unavailable": Reason(
        "fault", "No exchange rate for this currency; its totals stay in their own currency."
    ),
    "disk_full": Reason(
        "fault",
        "The data root could not be written (full or read-only); free space or allow writes.",
    ),
}

INHERENT: frozenset[str] = frozenset(name for name, r in REASONS.items() if r.kind == "inherent")


def fix_for(reason: str) -> str:
    """The one-sentence remedy (a reason outside the table reads as a generic fault)."""
    known = REASONS.get(reason)
    return known.fix if known is not None else "Run again later; if it persists, report it."


def is_fault(reason: str) -> bool:
    return reason not in INHERENT
