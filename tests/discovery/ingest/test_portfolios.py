"""Portfolio files: `{P}.csv` or the latest `{P}_{YYYYMMDD}.csv` by the date in the name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from discovery.errors import InputError
from discovery.ingest.portfolios import list_portfolios, resolve_portfolio
from discovery.layout import DataLayout
from tests.conftest import REPO


def _layout(tmp_path: Path, *names: str) -> DataLayout:
    layout = DataLayout(tmp_path)
    layout.trade_history_dir.mkdir(parents=True)
    for name in names:
        (layout.trade_history_dir / name).write_text("Position_UUID\n", encoding="utf-8")
    return layout


def test_plain_file(tmp_path: Path) -> None:
    layout = _layout(tmp_path, "demo.csv")
    assert resolve_portfolio(layout, "demo") == layout.trade_history_dir / "demo.csv"


def test_latest_date_in_the_name_wins_not_mtime(tmp_path: Path) -> None:
    layout = _layout(tmp_path, "live_20260105.csv", "live_20261120.csv", "live_20260601.csv")
    folder = layout.trade_history_dir
    # make the oldest-named file the newest on disk: the name decides, never the mtime
    os.utime(folder / "live_20260105.csv", (2_000_000_000, 2_000_000_000))
    assert resolve_portfolio(layout, "live") == folder / "live_20261120.csv"


def test_dated_file_wins_over_plain(tmp_path: Path) -> None:
    layout = _layout(tmp_path, "live.csv", "live_20260105.csv")
    assert resolve_portfolio(layout, "live").name == "live_20260105.csv"


def test_invalid_date_suffix_is_part_of_the_name(tmp_path: Path) -> None:
    layout = _layout(tmp_path, "live_20261399.csv", "live_2026.csv")
    assert list_portfolios(layout) == ["live_2026", "live_20261399"]
    with pytest.raises(InputError):
        resolve_portfolio(layout, "live")
    assert resolve_portfolio(layout, "live_20261399").name == "live_20261399.csv"


def test_prefix_names_do_not_collide(tmp_path: Path) -> None:
    layout = _layout(tmp_path, "demo_big_20260101.csv", "demo_20250101.csv")
    assert resolve_portfolio(layout, "demo").name == "demo_20250101.csv"
    assert resolve_portfolio(layout, "demo_big").name == "demo_big_20260101.csv"


def test_list_portfolios(tmp_path: Path) -> None:
    layout = _layout(
        tmp_path,
        "demo.csv",
        "live_20260105.csv",
        "live_20261120.csv",
        "notes.txt",
        ".hidden.csv",
        "UPPER.CSV",
    )
    assert list_portfolios(layout) == ["UPPER", "demo", "live"]


def test_unknown_portfolio_lists_what_exists(tmp_path: Path) -> None:
    layout = _layout(tmp_path, "demo.csv", "live_20260105.csv")
    with pytest.raises(InputError) as caught:
        resolve_portfolio(layout, "nope")
    message = str(caught.value)
    assert "'nope'" in message and "demo, live" in message
    assert caught.value.exit_code == 2


def test_no_trade_history_folder(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path / "missing")
    assert list_portfolios(layout) == []
    with pytest.raises(InputError) as caught:
        resolve_portfolio(layout, "demo")
    assert "none" in str(caught.value)


@pytest.mark.parametrize("name", ["../demo", "a/b", "", ".hidden", "de mo"])
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    layout = _layout(tmp_path, "demo.csv")
    with pytest.raises(InputError):
        resolve_portfolio(layout, name)


def test_bundled_demo_portfolio_resolves() -> None:
    data = REPO / "data"
    layout = DataLayout(data)
    assert "demo" in list_portfolios(layout)
    assert resolve_portfolio(layout, "demo") == layout.trade_history_dir / "demo.csv"
