"""`parse_chart(since=…)` drops exactly the bars before the date, nothing else."""

from __future__ import annotations

import json
from datetime import date

from services.yahoo_finance import parse_chart
from tests.conftest import FIXTURES

PAYLOADS = FIXTURES / "payloads"


def test_since_keeps_the_same_bars_from_that_date_on() -> None:
    name = next(
        p
        for p in sorted(PAYLOADS.iterdir())
        if p.name.startswith("yahoo")
        and "chart" in p.name
        and "error" not in p.name
        and "unknown" not in p.name
    )
    payload = json.loads(name.read_text("utf-8"))
    full = parse_chart(payload)
    assert len(full.bars) > 4
    cut = full.bars[len(full.bars) // 2].date
    part = parse_chart(payload, since=cut)
    assert part.bars == tuple(b for b in full.bars if b.date >= cut)
    assert part.bars and part.bars[0].date == cut
    assert parse_chart(payload, since=date(1900, 1, 1)).bars == full.bars
    assert parse_chart(payload, since=date(2999, 1, 1)).bars == ()
