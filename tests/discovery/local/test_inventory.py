"""Stage 0: file-name rules, latest-by-name-date, staleness, coverage and unreadable files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from discovery.errors import InputError
from discovery.layout import DataLayout
from discovery.local import inventory as inventory_module
from discovery.local.inventory import Inventory, build_inventory, split_dated_name
from tests.conftest import REPO

TODAY = date(2026, 11, 21)
REPO_DATA = REPO / "data"
DEMO_TICKERS = [
    "AAPL",
    "MSFT",
    "NVDA",
    "AMZN",
    "GOOGL",
    "META",
    "TSLA",
    "NFLX",
    "AMD",
    "CRWD",
    "COST",
    "JPM",
    "MA",
    "V",
    "XOM",
    "LLY",
    "UNH",
    "HD",
    "PG",
    "KO",
    "PEP",
    "CAT",
    "GE",
    "RTX",
    "LMT",
    "NEE",
    "AMT",
    "LIN",
    "DIS",
    "BRK-B",
    "MQG.AX",
    "BTC-USD",
]


def fundamental(rec: str = "BUY", conviction: str = "8/10", sector: str = "Technology") -> str:
    return (
        f"# Fixture\n\n### Recommendation: {rec} | Conviction: {conviction}\n"
        "- **Fair Value Range**: $10 - $12 (Current: $11)\n"
        f"- **Primary Sector**: {sector}\n"
    )


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    lay = DataLayout(tmp_path / "data")
    lay.fundamental_dir.mkdir(parents=True)
    lay.sector_dir.mkdir(parents=True)
    return lay


def write(directory: Path, name: str, text: str | bytes) -> Path:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def build(layout: DataLayout, tickers: list[str], **kw: Any) -> Inventory:
    return build_inventory(layout, tickers, today=TODAY, **kw)


# --- file names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("AAPL_20260101.md", ("AAPL", date(2026, 1, 1))),
        ("BRK-B_20260101.md", ("BRK-B", date(2026, 1, 1))),
        ("MQG.AX_20261231.MD", ("MQG.AX", date(2026, 12, 31))),
        ("communication_services_20261110.md", ("communication_services", date(2026, 11, 10))),
        ("AAPL_20261301.md", None),  # month 13
        ("AAPL_2026011.md", None),
        ("AAPL_2026O101.md", None),
        ("AAPL-20260101.md", None),
        ("_20260101.md", None),
        ("AAPL_20260101.txt", None),
        ("AAPL_20260101.md.bak", None),
        ("AAPL.md", None),
    ],
)
def test_split_dated_name(name: str, expected: tuple[str, date] | None) -> None:
    assert split_dated_name(name) == expected


def test_latest_by_date_in_name_not_mtime(layout: DataLayout) -> None:
    d = layout.fundamental_dir
    newer = write(d, "AAPL_20261101.md", fundamental("BUY"))
    older = write(d, "AAPL_20260901.md", fundamental("SELL"))
    write(d, "AAPL_20261015.md", fundamental("HOLD"))
    # The older file was touched last: mtime must not matter.
    os.utime(newer, (1_000_000, 1_000_000))
    os.utime(older, (2_000_000_000, 2_000_000_000))
    entry = build(layout, ["AAPL"]).fundamentals["AAPL"]
    assert entry is not None
    assert entry.file == "outputs/fundamental_analysis/AAPL_20261101.md"
    assert entry.date == date(2026, 11, 1)
    assert entry.recommendation == "BUY"
    assert entry.older_versions == 2


def test_ticker_match_is_case_insensitive(layout: DataLayout) -> None:
    write(layout.fundamental_dir, "aapl_20261101.md", fundamental())
    write(layout.fundamental_dir, "Msft_20261102.md", fundamental())
    inv = build(layout, ["AAPL", "msft"])
    assert list(inv.fundamentals) == ["AAPL", "MSFT"]
    assert all(e is not None for e in inv.fundamentals.values())


def test_same_date_in_two_cases_is_deterministic(layout: DataLayout) -> None:
    write(layout.fundamental_dir, "aapl_20261101.md", fundamental("SELL"))
    write(layout.fundamental_dir, "AAPL_20261101.md", fundamental("BUY"))
    entry = build(layout, ["AAPL"]).fundamentals["AAPL"]
    assert entry is not None
    assert entry.file.endswith("/AAPL_20261101.md")  # the smaller name ('A' < 'a')
    assert entry.older_versions == 1


def test_dotted_and_hyphenated_tickers(layout: DataLayout) -> None:
    write(layout.fundamental_dir, "BRK-B_20261113.md", fundamental(sector="Financial Services"))
    write(layout.fundamental_dir, "MQG.AX_20261019.md", fundamental(sector="Financials"))
    inv = build(layout, ["BRK-B", "MQG.AX", "BTC-USD"])
    brk, mqg = inv.fundamentals["BRK-B"], inv.fundamentals["MQG.AX"]
    assert brk is not None and mqg is not None
    assert brk.sector == mqg.sector == "financials"
    assert inv.fundamentals["BTC-USD"] is None
    assert inv.missing == ("BTC-USD",)


def test_a_ticker_is_not_matched_by_prefix(layout: DataLayout) -> None:
    write(layout.fundamental_dir, "AAPLX_20261101.md", fundamental())
    write(layout.fundamental_dir, "BRK_20261101.md", fundamental())
    inv = build(layout, ["AAPL", "BRK-B", "BRK"])
    assert inv.fundamentals["AAPL"] is None and inv.fundamentals["BRK-B"] is None
    assert inv.fundamentals["BRK"] is not None


def test_unrecognized_names_are_listed_not_read(layout: DataLayout) -> None:
    d = layout.fundamental_dir
    bad = b"\xff\xfe\x00binary"
    for name in (
        "bad ticker_20261101.md",
        "x..y_20261101.md",
        "AAPL_2026111.md",
        "notes.txt",
        "AAPL_20261101.md.bak",
        "-AAPL_20261101.md",
    ):
        write(d, name, bad)  # never read: a read would raise InputError
    write(d, ".gitkeep", "")
    (d / "AAPL_20261101.md").mkdir()  # a folder is not a file
    inv = build(layout, ["AAPL"])
    assert inv.fundamentals["AAPL"] is None
    assert inv.unrecognized_files == tuple(
        f"outputs/fundamental_analysis/{n}"
        for n in sorted(
            [
                "bad ticker_20261101.md",
                "x..y_20261101.md",
                "AAPL_2026111.md",
                "notes.txt",
                "AAPL_20261101.md.bak",
                "-AAPL_20261101.md",
            ]
        )
    )


@pytest.mark.parametrize("ticker", ["../AAPL", "AAPL/..", "A B", "", "..", "AAPL_X"])
def test_invalid_requested_ticker_is_rejected_never_matched(
    layout: DataLayout, ticker: str
) -> None:
    write(layout.fundamental_dir, "AAPL_20261101.md", fundamental())
    inv = build(layout, [ticker, "MSFT"])
    assert inv.rejected_tickers == (ticker.upper(),)
    assert list(inv.fundamentals) == ["MSFT"]
    assert inv.coverage.total == 1


def test_requested_tickers_are_normalized_and_deduplicated(layout: DataLayout) -> None:
    write(layout.fundamental_dir, "AAPL_20261101.md", fundamental())
    inv = build(layout, [" aapl ", "AAPL", "msft", "Aapl"])
    assert list(inv.fundamentals) == ["AAPL", "MSFT"]
    assert (inv.coverage.with_analysis, inv.coverage.total) == (1, 2)


# --- staleness and age ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "age", "stale"),
    [
        ("20261121", 0, False),
        ("20261022", 30, False),
        ("20261021", 31, True),
        ("20250101", 689, True),
    ],
)
def test_age_and_stale(layout: DataLayout, day: str, age: int, stale: bool) -> None:
    write(layout.fundamental_dir, f"AAPL_{day}.md", fundamental())
    entry = build(layout, ["AAPL"]).fundamentals["AAPL"]
    assert entry is not None
    assert (entry.age_days, entry.stale) == (age, stale)


def test_max_age_days_is_configurable(layout: DataLayout) -> None:
    write(layout.fundamental_dir, "AAPL_20261111.md", fundamental())
    assert build(layout, ["AAPL"], max_age_days=9).stale == ("AAPL",)
    assert build(layout, ["AAPL"], max_age_days=10).stale == ()


def test_future_dated_file_is_flagged(layout: DataLayout) -> None:
    write(layout.fundamental_dir, "AAPL_20261125.md", fundamental())
    entry = build(layout, ["AAPL"]).fundamentals["AAPL"]
    assert entry is not None
    assert entry.age_days == -4 and not entry.stale
    assert "dated in the future" in entry.warnings


# --- coverage -------------------------------------------------------------------------------------


def test_coverage_counts_stale_files(layout: DataLayout) -> None:
    write(layout.fundamental_dir, "AAPL_20261120.md", fundamental())
    write(layout.fundamental_dir, "MSFT_20260101.md", fundamental())
    write(layout.fundamental_dir, "NVDA_20261101.md", fundamental(sector="Unknownium"))
    inv = build(layout, ["AAPL", "MSFT", "NVDA", "TSLA"])
    assert (inv.coverage.with_analysis, inv.coverage.total, inv.coverage.ratio) == (3, 4, 0.75)
    assert inv.missing == ("TSLA",)
    assert inv.stale == ("MSFT",)
    assert set(inv.entries()) == {"AAPL", "MSFT", "NVDA"}
    # Only fresh files that state a sector replace a profile fetch.
    assert inv.fresh_files() == {"AAPL": "outputs/fundamental_analysis/AAPL_20261120.md"}


def test_coverage_ratio_is_rounded_and_empty_is_zero(layout: DataLayout) -> None:
    write(layout.fundamental_dir, "AAPL_20261120.md", fundamental())
    assert build(layout, ["AAPL", "MSFT", "NVDA"]).coverage.ratio == 0.3333
    assert build(layout, []).coverage.ratio == 0.0


def test_missing_folders_mean_no_local_analysis(tmp_path: Path) -> None:
    inv = build_inventory(DataLayout(tmp_path / "nothing"), ["AAPL"], today=TODAY)
    assert inv.missing == ("AAPL",) and inv.sectors == {} and inv.unrecognized_files == ()


# --- unreadable files -----------------------------------------------------------------------------


def test_non_utf8_file_is_an_input_error_naming_it(layout: DataLayout) -> None:
    write(layout.fundamental_dir, "AAPL_20261101.md", "Recommendation: BUY é".encode("latin-1"))
    with pytest.raises(InputError) as err:
        build(layout, ["AAPL"])
    message = str(err.value)
    assert "outputs/fundamental_analysis/AAPL_20261101.md" in message
    assert "UTF-8" in message
    assert err.value.exit_code == 2
    assert "\n" not in message


def test_binary_file_is_an_input_error_naming_it(layout: DataLayout) -> None:
    write(layout.fundamental_dir, "AAPL_20261101.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(InputError, match=r"AAPL_20261101\.md is binary"):
        build(layout, ["AAPL"])


def test_unreadable_file_is_an_input_error_naming_it(
    layout: DataLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(layout.fundamental_dir, "AAPL_20261101.md", fundamental())

    def denied(path: str, flags: int, mode: int = 0o777) -> Any:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(inventory_module.os, "open", denied)
    with pytest.raises(
        InputError,
        match=r"Cannot read analysis file .*AAPL_20261101\.md: "
        r"Permission denied\.$",
    ):
        build(layout, ["AAPL"])


def test_utf8_bom_is_read_transparently(layout: DataLayout) -> None:
    write(layout.fundamental_dir, "AAPL_20261101.md", b"\xef\xbb\xbf" + fundamental().encode())
    entry = build(layout, ["AAPL"]).fundamentals["AAPL"]
    assert entry is not None and entry.recommendation == "BUY"


def test_only_the_latest_file_of_requested_tickers_is_read(layout: DataLayout) -> None:
    d = layout.fundamental_dir
    write(d, "AAPL_20260101.md", b"\xff\xff old and broken")  # older version: not read
    write(d, "AAPL_20261101.md", fundamental())
    write(d, "ZZZZ_20261101.md", b"\xff\xff unrequested and broken")  # not requested: not read
    entry = build(layout, ["AAPL"]).fundamentals["AAPL"]
    assert entry is not None and entry.older_versions == 1


def test_each_folder_is_listed_once_and_each_covered_file_read_once(
    layout: DataLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    for t in ("AAPL", "MSFT", "NVDA"):
        write(layout.fundamental_dir, f"{t}_20261101.md", fundamental())
        write(layout.fundamental_dir, f"{t}_20261001.md", fundamental())
    write(layout.sector_dir, "technology_20261101.md", "### Recommendation: BUY\n")
    listed: list[str] = []
    opened: list[str] = []
    real_scandir = os.scandir
    real_open: Callable[..., Any] = os.open

    def counting_scandir(path: Any) -> Any:
        listed.append(str(path))
        return real_scandir(path)

    def counting_open(path: str, flags: int, mode: int = 0o777) -> Any:
        opened.append(os.path.basename(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(inventory_module.os, "scandir", counting_scandir)
    monkeypatch.setattr(inventory_module.os, "open", counting_open)
    build(layout, ["AAPL", "MSFT", "TSLA"])
    assert sorted(listed) == sorted([str(layout.fundamental_dir), str(layout.sector_dir)])
    assert sorted(opened) == ["AAPL_20261101.md", "MSFT_20261101.md", "technology_20261101.md"]


# --- sector files ---------------------------------------------------------------------------------


def test_sector_files_with_aliases_and_cases(layout: DataLayout) -> None:
    d = layout.sector_dir
    write(d, "technology_20261115.md", "### Recommendation: BUY | Confidence: 0.82/1.0\n")
    write(d, "TECHNOLOGY_20261201.md", "### Recommendation: SELL\n")  # newest, other case
    write(d, "Technology_20260810.md", "### Recommendation: HOLD\n")
    write(d, "FINANCE_20261020.md", "### Recommendation: HOLD | Confidence: 7/10\n")
    write(d, "Industrial_20260901.md", "no recommendation here\n")
    write(d, "HealthCare_20260805.md", "### Recommendation: BUY\n")
    write(d, "widgets_20261101.md", "### Recommendation: BUY\n")
    inv = build(layout, [])
    assert sorted(inv.sectors) == ["financials", "healthcare", "industrials", "technology"]
    tech = inv.sectors["technology"]
    assert (tech.file, tech.recommendation, tech.older_versions) == (
        "outputs/sector_analysis/TECHNOLOGY_20261201.md",
        "SELL",
        2,
    )
    fin = inv.sectors["financials"]
    assert (fin.age_days, fin.stale, fin.confidence) == (32, True, 0.7)
    assert inv.sectors["industrials"].recommendation is None
    assert inv.stale_sectors == ("financials", "healthcare", "industrials")
    assert inv.unrecognized_files == ("outputs/sector_analysis/widgets_20261101.md",)


def test_unreadable_sector_file_is_an_input_error(layout: DataLayout) -> None:
    write(layout.sector_dir, "energy_20261101.md", b"\xc3\x28 broken")
    with pytest.raises(InputError, match=r"outputs/sector_analysis/energy_20261101\.md"):
        build(layout, [])


# --- report section -------------------------------------------------------------------------------


def test_report_section_shape(layout: DataLayout) -> None:
    write(layout.fundamental_dir, "AAPL_20261101.md", fundamental(conviction="9.1/10.0"))
    write(layout.fundamental_dir, "MSFT_20261101.md", "### Recommendation: Maybe\n")
    write(layout.fundamental_dir, "junk.md", "")
    write(layout.sector_dir, "technology_20261115.md", "### Recommendation: BUY\n")
    section = build(layout, ["AAPL", "MSFT", "TSLA"]).to_report_section()
    assert json.loads(json.dumps(section)) == section  # JSON-ready
    fa = section["fundamental_analysis"]
    assert fa["coverage"] == {"with_analysis": 2, "total": 3, "ratio": 0.6667}
    assert fa["missing"] == ["TSLA"] and fa["stale"] == []
    assert fa["tickers"]["TSLA"] is None
    assert fa["tickers"]["AAPL"] == {
        "file": "outputs/fundamental_analysis/AAPL_20261101.md",
        "date": "2026-11-01",
        "age_days": 20,
        "stale": False,
        "recommendation": "BUY",
        "conviction": 0.91,
        "fair_value_low": 10.0,
        "fair_value_high": 12.0,
        "current_price": 11.0,
        "sector": "technology",
    }
    assert fa["tickers"]["MSFT"]["recommendation"] is None
    assert [w["ticker"] for w in fa["warnings"]] == ["MSFT"]
    assert fa["unrecognized_files"] == ["outputs/fundamental_analysis/junk.md"]
    sa = section["sector_analysis"]
    assert sa["sectors"]["technology"]["recommendation"] == "BUY"
    assert sa["stale"] == [] and sa["unrecognized_files"] == []


# --- the bundled demo data ------------------------------------------------------------------------


def test_demo_data_inventory() -> None:
    inv = build_inventory(DataLayout(REPO_DATA), DEMO_TICKERS, today=TODAY)
    assert (inv.coverage.with_analysis, inv.coverage.total) == (21, 32)
    assert inv.unrecognized_files == ()
    assert all(not e.warnings for t, e in inv.entries().items() if t != "AMD")
    aapl, nvda, amd = (inv.entries()[t] for t in ("AAPL", "NVDA", "AMD"))
    assert (aapl.date, aapl.older_versions, aapl.recommendation) == (date(2026, 11, 12), 1, "BUY")
    assert (nvda.recommendation, nvda.conviction) == ("STRONG BUY", 0.9)
    assert amd.fair_value_low is None and len(amd.warnings) == 1
    assert inv.entries()["TSLA"].recommendation == "SELL"
    assert inv.entries()["GOOGL"].recommendation == "HOLD"
    assert inv.entries()["NFLX"].fair_value_low == 1095.0
    assert inv.entries()["META"].sector is None
    assert set(inv.stale) == {"GOOGL", "TSLA", "NFLX", "CRWD", "COST", "XOM", "HD", "RTX", "MQG.AX"}
    assert set(inv.sectors) == {
        "technology",
        "financials",
        "industrials",
        "communication_services",
        "healthcare",
    }
    assert inv.sectors["technology"].file.endswith("technology_20261115.md")
