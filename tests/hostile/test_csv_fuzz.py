"""Fuzz the CSV reader: random bytes, rows, quoting and line endings give either a TradeBook whose
report sections are finite JSON, or an InputError that is one sentence naming the file (and its
row and column where it has them) — never another exception, and always quickly."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery.errors import InputError
from discovery.ingest.trades import ingest
from tests.discovery.ingest.test_trades import csv_text, trade

CELLS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["", "NA", "nan", "inf", "-inf", "1e309", "9" * 40, '"', '""', ",", ";", "\n", "\r",
         "Closed", "Open", "Long", "Short", "2026-01-05", "05/01/2026", "\x00", "AAA"]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)  # fmt: skip
BREAKS = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A valid file with cells, lines or bytes spoiled at random."""
    rows = [trade(Short_Window=i + 1) for i in range(draw(st.integers(0, 6)))]
    text = csv_text(rows)
    lines = text.split("\n")
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        cells = lines[at].split(",")
        if cells:
            cells[draw(st.integers(0, len(cells) - 1))] = draw(CELLS)
        lines[at] = ",".join(cells)
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), ",".join(draw(st.lists(CELLS, max_size=30))))
    data = draw(BREAKS).join(lines).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 4)) == 0:
        blob = draw(st.binary(max_size=40))
        at = draw(st.integers(0, len(data)))
        data = data[:at] + blob + data[at:]
    if draw(st.integers(0, 9)) == 0:
        data = draw(st.binary(max_size=400))
    return data


@settings(
    max_examples=150,
    deadline=3000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=csv_files())
def test_reader_gives_a_book_or_one_sentence(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.csv"
        path.write_bytes(data)
        started = time.monotonic()
        try:
            book = ingest(path, chunk_rows=3)
        except InputError as exc:
            message = str(exc)
            assert message.startswith(str(path)), message
            assert "\n" not in message and "\r" not in message and len(message) < 1200, message
            assert "np.float64" not in message and "Traceback" not in message
            if exc.row is not None:
                assert f"row {exc.row}" in message
            if exc.column is not None and exc.row is not None and exc.row > 1:
                assert f"column {exc.column}" in message
        else:
            json.dumps(book.to_report_sections(), allow_nan=False)
            json.dumps({k: v.to_json() for k, v in book.strategy_performance().items()},
                       allow_nan=False)  # fmt: skip
        assert time.monotonic() - started < 5
