"""Position_UUIDs read as fixed-width bytes, and the text re-read for ids that do not fit."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from discovery.errors import InputError
from discovery.ingest.closed_trades import iter_closed_trades
from discovery.ingest.trades import ingest
from discovery.ingest.uuids import WIDTH, PositionIds
from tests.discovery.ingest.test_trades import csv_text, open_trade, trade


def _write(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "ids.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    return path


def _strategy_for(id_bytes: int) -> str:
    # AAA_{strategy}_5_20_2026-01-05: 20 bytes besides the strategy
    return "S" * (id_bytes - 20)


@pytest.mark.parametrize(("id_bytes", "as_text"), [(WIDTH - 1, False), (WIDTH, True)])
def test_an_id_that_fills_the_width_is_read_again_as_text(
    tmp_path: Path, id_bytes: int, as_text: bool
) -> None:
    strategy = _strategy_for(id_bytes)
    rows = [
        trade(),
        trade(Strategy_Type=strategy),
        trade(
            Strategy_Type=strategy, Short_Window=6, Position_UUID=f"AAA_{strategy}_5_20_2026-01-05"
        ),
        open_trade(Strategy_Type=strategy, Short_Window=7),
    ]
    assert len(rows[1]["Position_UUID"].encode()) == id_bytes
    book = ingest(_write(tmp_path, rows), chunk_rows=2)
    assert book.ids_as_text is as_text
    found = [(i.row, i.kind, i.position_uuid) for i in book.quality.issues]
    assert found == [
        (4, "uuid_mismatch", rows[1]["Position_UUID"]),  # says Short_Window 5, the row 6
        (4, "duplicate_uuid", rows[1]["Position_UUID"]),  # row 3 has the same id
    ]
    assert book.active_positions[0].position_uuid == rows[3]["Position_UUID"]
    records = list(iter_closed_trades(book, chunk_rows=2))
    assert [r["position_uuid"] for r in records] == [r["Position_UUID"] for r in rows[:3]]


def test_non_ascii_ids_are_compared_and_quoted_as_text(tmp_path: Path) -> None:
    rows = [
        trade(Strategy_Type="ÉMA"),  # the id it implies, AAA_ÉMA_5_20_2026-01-05, agrees
        trade(Short_Window=6, Position_UUID="AAA_SMA_6_20_2026-01-05 ünï"),
        trade(Strategy_Type="ÉMA"),
    ]
    book = ingest(_write(tmp_path, rows))
    assert book.ids_as_text is False
    issues = [(i.row, i.kind, i.position_uuid) for i in book.quality.issues]
    assert issues == [
        (3, "uuid_mismatch", "AAA_SMA_6_20_2026-01-05 ünï"),
        (4, "duplicate_uuid", "AAA_ÉMA_5_20_2026-01-05"),
    ]
    assert "'AAA_ÉMA_5_20_2026-01-05' already appears" in book.quality.issues[1].message


def test_a_non_utf8_id_past_the_head_is_refused_with_its_row_and_column(tmp_path: Path) -> None:
    rows = [trade(Short_Window=i % 50 + 1) for i in range(800)] + [
        trade(Position_UUID="AAA_SMA_5_20_2026-01-05_Tres")
    ]
    text = csv_text(rows)
    assert len(text) > 128 * 1024
    path = tmp_path / "late.csv"
    path.write_bytes(text.replace("Tres", "Tr\u00e8s").encode("latin-1"))
    with pytest.raises(InputError) as caught:
        ingest(path, chunk_rows=100)
    assert (caught.value.row, caught.value.column) == (802, "Position_UUID")
    assert "not UTF-8" in str(caught.value)


def test_a_blank_id_is_present_but_not_a_position(tmp_path: Path) -> None:
    book = ingest(_write(tmp_path, [trade(), open_trade(Position_UUID="   ")]))
    assert [(i.row, i.kind) for i in book.quality.issues] == [(3, "uuid_mismatch")]
    assert book.active_positions[0].position_uuid is None


def _ids(values: list[str], *, as_text: bool) -> PositionIds:
    if as_text:
        array = np.array(values, dtype=object)
    else:
        array = np.array([v.encode() for v in values], dtype=f"S{WIDTH}")
    return PositionIds.of(array, utf8_error=lambda: InputError("not UTF-8"))


@pytest.mark.parametrize("as_text", [False, True])
def test_digests_follow_the_id_not_its_place(as_text: bool) -> None:
    rng = random.Random(7)
    distinct = sorted(
        {"".join(rng.choices("AB_12-", k=rng.randint(1, WIDTH - 1))) for _ in range(20_000)}
    )
    first = _ids(distinct, as_text=as_text).digests()
    assert len(set(first.tolist())) == len(distinct)  # no two distinct ids share a digest
    shuffled = distinct[::-1]
    again = _ids(shuffled, as_text=as_text).digests()
    assert again.tolist() == first[::-1].tolist()  # the same id, the same digest, anywhere
