"""The trade-history columns tradescout reads, and the limits every value must respect.

One declaration, read by the dialect (which header names it looks for), the chunk stream (what
pandas parses), the decoder (how a column is typed) and the per-trade pass (which extra columns a
closed-trade record carries). docs/ingest_rules.md is the prose version.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

REQUIRED_COLUMNS: tuple[str, ...] = (
    "Position_UUID",
    "Ticker",
    "Strategy_Type",
    "Entry_Timestamp",
    "Status",
)
LABEL_COLUMNS: tuple[str, ...] = (
    "Ticker",
    "Strategy_Type",
    "Entry_Timestamp",
    "Exit_Timestamp",
    "Direction",
    "Status",
)
"""Text with few distinct values per chunk: pandas reads them as categories (codes made while it
parses, without the GIL, and one Python string per distinct value)."""
TEXT_COLUMNS: tuple[str, ...] = ("Position_UUID", *LABEL_COLUMNS)
NUMBER_COLUMNS: tuple[str, ...] = (
    "Short_Window",
    "Long_Window",
    "Avg_Entry_Price",
    "Avg_Exit_Price",
    "Position_Size",
    "PnL",
    "Return",
    "Duration_Days",
    "Max_Favourable_Excursion",
    "Max_Adverse_Excursion",
    "Days_Since_Entry",
    "Current_Unrealized_PnL",
)
USED_COLUMNS: tuple[str, ...] = TEXT_COLUMNS + NUMBER_COLUMNS
"""What the first pass (the TradeBook) reads."""

# Read for the closed-trade records only (the TradeBook never needs them). Trade_Quality has a
# few distinct values: a category, as the label columns. X_Status (a 19-digit id, one per row) is
# read as fixed-width bytes, as Position_UUID is (`uuids`): never a float, and no Python string
# per row.
RECORD_LABEL_COLUMNS: tuple[str, ...] = ("Trade_Quality",)
RECORD_ID_COLUMNS: tuple[str, ...] = ("X_Status",)
RECORD_TEXT_COLUMNS: tuple[str, ...] = RECORD_LABEL_COLUMNS + RECORD_ID_COLUMNS
RECORD_NUMBER_COLUMNS: tuple[str, ...] = ("Exit_Efficiency_Fixed", "Exit_Efficiency")
RECORD_COLUMNS: tuple[str, ...] = USED_COLUMNS + RECORD_TEXT_COLUMNS + RECORD_NUMBER_COLUMNS
"""What the per-trade pass reads (`iter_closed_trades`)."""

# Text columns: only an empty cell is missing ("NA" is a real ticker). Numbers: the usual spellings.
TEXT_NA: list[str] = [""]
NUMBER_NA: list[str] = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "#N/A"]

MAX_MAGNITUDE = 1e15
"""Any number read must be below this in magnitude. Real prices, sizes and PnLs are far below it,
and with every input under 1e15 no product, sum or ratio the report derives can overflow."""
MAX_UUID_CHARS = 256
MAX_STRATEGY_CHARS = 64
MAX_STRATEGIES = 1_000
"""Distinct Strategy_Type values a file may have: memory per strategy is kept, so it is bounded
(a shifted column turns prices into "strategies" long before a real file gets near this)."""
MAX_RECORD_TEXT_CHARS = 64
"""Trade_Quality / X_Status longer than this are not labels or ids: the record says null."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]
