"""What a shared limit belongs to, and the one place its storage names are spelled.

A limit belongs to a key, not to a process: `Scope(upstream, service)` names it (the upstream
keeps live and sandbox traffic apart, as in the quota ledger). Redis keys all start with one
prefix so a shared server can hold other data, and so tests can clear only ours.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from services.recordclass import record

PREFIX = "tradescout"


@record(order=True)
class Scope:
    """One upstream service's limits: `(upstream, service)`, e.g. ("live", "sec_edgar")."""

    upstream: str
    service: str

    @property
    def label(self) -> str:
        return f"{self.upstream}/{self.service}"


def utc_day(now: datetime) -> date:
    return now.astimezone(UTC).date()


def seconds_until_day_after(day: date, now: datetime) -> int:
    """Redis expiry of a daily counter: through the day after (a late reader still sees it)."""
    end = datetime.combine(day + timedelta(days=2), time(), tzinfo=UTC)
    return max(60, int((end - now.astimezone(UTC)).total_seconds()))


def rate_key(scope: Scope) -> str:
    return f"{PREFIX}:rate:{scope.upstream}:{scope.service}"


def quota_key(scope: Scope, day: date) -> str:
    return f"{PREFIX}:quota:{scope.upstream}:{scope.service}:{day.isoformat()}"


def flag_key(scope: Scope, kind: str) -> str:
    return f"{PREFIX}:flag:{scope.upstream}:{scope.service}:{kind}"


def flight_key(key: str) -> str:
    return f"{PREFIX}:flight:{key}"
