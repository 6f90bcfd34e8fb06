"""The closed trades the first pass keeps (`ingest(keep_records=True)`) give, byte for byte, the
JSON lines a second pass over the CSV gives, whatever the file's quirks; they are held in memory
while few and spilled to an unnamed temporary file past that; the CSV is not read again."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from discovery.errors import InputError, StorageError
from discovery.ingest import closed_spill
from discovery.ingest.closed_spill import ClosedSpill
from discovery.ingest.closed_trades import iter_closed_chunks
from discovery.ingest.models import TradeBook
from discovery.ingest.trades import ingest
from discovery.report.closed import closed_trade_lines
from services.sandbox.portfolios import synthetic_tickers, write_trades_csv
from tests.discovery.report.test_closed import TRICKY_HEADER, TRICKY_ROWS
from tests.discovery.report.test_sections import spy

ROW = "T{i},AAA,SMA,10,20,2026-01-05,2026-01-15,100,110,2,Long,20,0.1,Closed,0.12,0.02,{e},G,{i}"


def _lines(book: TradeBook) -> bytes:
    """The records as the report's file would hold them (benchmark and currency included)."""
    blocks = closed_trade_lines(iter_closed_chunks(book, chunk_rows=3), spy(), {"AAA": "USD"})
    return b"".join(block for block, _ in blocks)


def _both(csv: Path, scratch: Path) -> tuple[TradeBook, TradeBook]:
    return ingest(csv, keep_records=True, scratch_dir=scratch), ingest(csv, chunk_rows=4)


def _write(tmp_path: Path, header: str, rows: list[str], sep: str = ",") -> Path:
    csv = tmp_path / "trades.csv"
    text = "\n".join([header, *rows]) + "\n"
    csv.write_text(text if sep == "," else text.replace(",", sep), encoding="utf-8")
    return csv


CASES: dict[str, tuple[str, list[str]]] = {
    "tricky values": (TRICKY_HEADER, TRICKY_ROWS),
    "no optional columns": (
        TRICKY_HEADER.rsplit(",Exit_Efficiency", 1)[0],
        [",".join(r.split(",")[:16]) for r in TRICKY_ROWS[2:]],
    ),
    # text among the optional numbers: the first pass goes the tolerant way, and they are NaN
    "text efficiencies": (
        TRICKY_HEADER,
        [ROW.format(i=i, e=e) for i, e in enumerate(["0.5", "", "1e3", "abc", "0.75"])],
    ),
    # a repeated header line part-way: skipped by both passes (found by the tolerant read)
    "repeated header": (
        TRICKY_HEADER,
        [ROW.format(i=i, e="0.5") for i in range(5)]
        + [TRICKY_HEADER]
        + [ROW.format(i=i, e="0.25") for i in range(5, 9)],
    ),
    # an id too long for the fixed-width form: both passes read ids as text
    "long id": (TRICKY_HEADER, [ROW.format(i="x" * 300, e="0.5"), ROW.format(i=1, e="0.5")]),
    "fixed efficiency column": (
        TRICKY_HEADER + ",Exit_Efficiency_Fixed",
        [ROW.format(i=i, e="0.5") + f",{i / 10}" for i in range(4)],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_kept_records_are_the_second_pass_records(tmp_path: Path, case: str) -> None:
    header, rows = CASES[case]
    kept, plain = _both(_write(tmp_path, header, rows), tmp_path / "scratch")
    assert kept.closed is not None and plain.closed is None
    assert kept.closed.count == kept.summary.closed_trades > 0
    assert _lines(kept) == _lines(plain)
    kept.close()
    plain.close()


def test_a_semicolon_file_with_decimal_commas(tmp_path: Path) -> None:
    rows = [
        ROW.format(i=i, e=e).replace(",", ";").replace("0.", "0,")
        for i, e in enumerate(["0.5", "abc", ""])
    ]
    csv = tmp_path / "trades.csv"
    csv.write_text("\n".join([TRICKY_HEADER.replace(",", ";"), *rows]) + "\n", encoding="utf-8")
    kept, plain = _both(csv, tmp_path / "scratch")
    assert kept.closed is not None and kept.closed.count == 3
    assert _lines(kept) == _lines(plain)
    assert b'"exit_efficiency":0.5' in _lines(kept)  # the comma read as the decimal mark


def test_past_the_held_limit_the_records_go_to_an_unnamed_file_not_the_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(closed_spill, "HELD_TRADES", 50)
    csv = tmp_path / "big.csv"
    write_trades_csv(csv, 3_000, synthetic_tickers(7), seed=3)
    scratch = tmp_path / "scratch"
    kept, plain = _both(csv, scratch)
    spill = kept.closed
    assert spill is not None and spill.count == kept.summary.closed_trades > 50
    want = _lines(plain)
    csv.write_text("changed\n", encoding="utf-8")  # a second pass would refuse now
    assert _lines(kept) == want
    assert _lines(kept) == want  # read again: by offset, the same
    assert list(scratch.iterdir()) == []  # nothing with a name, even while the run holds it
    kept.close()
    with pytest.raises(ValueError, match="closed"):
        next(spill.chunks())


def test_a_refused_file_leaves_nothing_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(closed_spill, "HELD_TRADES", 0)
    opened: list[ClosedSpill] = []
    real_init = ClosedSpill.__init__

    def tracking(self: ClosedSpill, scratch: Path | None = None) -> None:
        real_init(self, scratch)
        opened.append(self)

    monkeypatch.setattr(ClosedSpill, "__init__", tracking)
    bad = ROW.format(i=99, e="0.5").replace(",100,110,", ",abc,110,")  # an unreadable price
    rows = [ROW.format(i=i, e="0.5") for i in range(30)] + [bad]
    with pytest.raises(InputError, match="row 32, column Avg_Entry_Price"):
        ingest(_write(tmp_path, TRICKY_HEADER, rows), keep_records=True, chunk_rows=10)
    assert opened and all(s._file is None for s in opened)


class _FullDisk:
    def fileno(self) -> int:  # pragma: no cover - never read
        raise AssertionError

    def seek(self, offset: int) -> int:
        return offset

    def writelines(self, parts: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:  # pragma: no cover
        pass

    def close(self) -> None:
        pass


def test_a_full_disk_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(closed_spill, "HELD_TRADES", 0)
    scratch = tmp_path / "state" / "tmp"
    monkeypatch.setattr(closed_spill.tempfile, "TemporaryFile", lambda **_: _FullDisk())
    csv = _write(tmp_path, TRICKY_HEADER, [ROW.format(i=i, e="0.5") for i in range(3)])
    with pytest.raises(StorageError) as refused:
        ingest(csv, keep_records=True, scratch_dir=scratch)
    message = str(refused.value)
    assert "disk full" in message and str(scratch) in message and "free some space" in message
