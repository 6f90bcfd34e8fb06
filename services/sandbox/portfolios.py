"""Synthetic trade-history CSVs (the real 27-column format) for tests and benchmarks, streamed.

Benchmarks need files far larger than memory should ever hold, so rows are generated and written
in fixed-size blocks: peak memory is one block, whatever `rows` is. Values are invented but shaped
like a real export (timestamps with a time part, long float prices, quoted `Trade_Quality` with a
comma, 19-digit `X_Status` ids, an occasional `inf` ratio, open trades with empty exit fields).
The last `min(rows, len(tickers))` rows are open positions, so the number of open positions (and
hence the ingester's memory) depends on the tickers, not on the row count.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

HEADER: tuple[str, ...] = (
    "Position_UUID",
    "Ticker",
    "Strategy_Type",
    "Short_Window",
    "Long_Window",
    "Signal_Window",
    "Entry_Timestamp",
    "Exit_Timestamp",
    "Avg_Entry_Price",
    "Avg_Exit_Price",
    "Position_Size",
    "Direction",
    "PnL",
    "Return",
    "Duration_Days",
    "Trade_Type",
    "Status",
    "Max_Favourable_Excursion",
    "Max_Adverse_Excursion",
    "MFE_MAE_Ratio",
    "Exit_Efficiency",
    "Days_Since_Entry",
    "Current_Unrealized_PnL",
    "Current_Excursion_Status",
    "Exit_Efficiency_Fixed",
    "Trade_Quality",
    "X_Status",
)

_BLOCK = 100_000
_FIRST_DAY = np.datetime64("2015-01-02")
_SPAN_DAYS = 4000
_QUALITY = np.array(
    ["Excellent", "Good", "Poor", "Poor Setup - High Risk, Low Reward", "Failed to Capture Upside"],
    dtype=object,
)


def synthetic_tickers(count: int) -> list[str]:
    """`count` distinct plausible symbols (AAAA, AAAB, …) for large-portfolio benchmarks."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out: list[str] = []
    for i in range(count):
        code, n = "", i
        for _ in range(4):
            code = letters[n % 26] + code
            n //= 26
        out.append(code)
    return out


def _block(
    rng: np.random.Generator, start: int, n: int, total: int, tickers: np.ndarray
) -> pd.DataFrame:
    """One block of rows; rows at index >= total - len(tickers) are open positions."""
    idx = np.arange(start, start + n)
    n_open = min(total, len(tickers))
    is_open = idx >= total - n_open
    tick = tickers[rng.integers(0, len(tickers), n)]
    # The open tail holds each ticker once, so open positions never repeat a ticker.
    tail = idx - (total - n_open)
    tick = np.where(is_open, tickers[np.clip(tail, 0, len(tickers) - 1)], tick)
    strat = np.where(rng.random(n) < 0.7, "SMA", "EMA").astype(object)
    short = rng.integers(2, 80, n)
    long_ = short + rng.integers(1, 40, n)
    # Entry dates advance with the row index, like a chronological export.
    entry_day = _FIRST_DAY + (idx * _SPAN_DAYS // max(total, 1)).astype("timedelta64[D]")
    duration = rng.integers(0, 120, n)
    exit_day = entry_day + duration.astype("timedelta64[D]")
    entry_str = np.datetime_as_string(entry_day, unit="D").astype(object)
    exit_str = np.datetime_as_string(exit_day, unit="D").astype(object)
    entry_px = np.round(rng.uniform(5, 900, n), 6) + rng.random(n) * 1e-6
    ret = np.round(rng.normal(0.02, 0.12, n), 4)
    short_side = rng.random(n) < 0.05
    direction = np.where(short_side, "Short", "Long").astype(object)
    exit_px = np.round(entry_px * (1 + np.where(short_side, -ret, ret)), 4)
    size = np.where(rng.random(n) < 0.9, 1.0, np.round(rng.uniform(1, 50, n)))
    pnl = np.round((exit_px - entry_px) * size * np.where(short_side, -1, 1), 2)
    # Excursions as a real export has them: the best point is at least where the trade ended,
    # the worst at least its loss (an MAE of 0, the `inf` ratio, only on a trade that gained).
    mfe = np.round(np.maximum(np.abs(rng.normal(0.08, 0.1, n)), ret), 6)
    mae = np.round(np.maximum(np.abs(rng.normal(0.03, 0.05, n)), -ret), 6)
    mae[(rng.random(n) < 0.01) & (ret >= 0)] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.round(mfe / mae, 4)
    ratio_txt = np.where(np.isinf(ratio), "inf", ratio.astype(str)).astype(object)
    eff = np.round(rng.uniform(-2, 1, n), 6).astype(object)
    eff[rng.random(n) < 0.5] = ""
    uuid = tick + "_" + strat + "_" + short.astype(str) + "_" + long_.astype(str) + "_" + entry_str
    x_status = rng.integers(10**18, 2 * 10**18, n).astype(str).astype(object)
    status = np.where(is_open, "Open", "Closed").astype(object)
    blank = np.full(n, "", dtype=object)
    frame = {
        "Position_UUID": uuid,
        "Ticker": tick,
        "Strategy_Type": strat,
        "Short_Window": short,
        "Long_Window": long_,
        "Signal_Window": np.zeros(n, dtype=np.int64),
        "Entry_Timestamp": entry_str + " 00:00:00",
        "Exit_Timestamp": np.where(is_open, blank, exit_str + " 00:00:00"),
        "Avg_Entry_Price": entry_px,
        "Avg_Exit_Price": np.where(is_open, blank, exit_px.astype(str)),
        "Position_Size": size,
        "Direction": direction,
        "PnL": np.where(is_open, blank, pnl.astype(str)),
        "Return": ret,
        "Duration_Days": np.where(is_open, blank, duration.astype(float).astype(str)),
        "Trade_Type": direction,
        "Status": status,
        "Max_Favourable_Excursion": mfe,
        "Max_Adverse_Excursion": mae,
        "MFE_MAE_Ratio": ratio_txt,
        "Exit_Efficiency": eff,
        "Days_Since_Entry": rng.integers(0, 400, n).astype(float),
        "Current_Unrealized_PnL": ret,
        "Current_Excursion_Status": np.where(ret >= 0, "Favorable", "Adverse").astype(object),
        "Exit_Efficiency_Fixed": np.round(rng.uniform(-5, 1, n), 4),
        "Trade_Quality": _QUALITY[rng.integers(0, len(_QUALITY), n)],
        "X_Status": x_status,
    }
    return pd.DataFrame(frame, columns=list(HEADER))


def write_trades_csv(path: Path, rows: int, tickers: Sequence[str], seed: int) -> None:
    """Write `rows` synthetic trades over `tickers` to `path`, one block in memory at a time."""
    if not tickers:
        raise ValueError("write_trades_csv needs at least one ticker")
    rng = np.random.default_rng(seed)
    tick_arr = np.array([t.upper() for t in tickers], dtype=object)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(HEADER) + "\n")
        for start in range(0, rows, _BLOCK):
            n = min(_BLOCK, rows - start)
            block = _block(rng, start, n, rows, tick_arr)
            block.to_csv(
                out, header=False, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL
            )
    os.replace(tmp, path)


# manual use: python -m services.sandbox.portfolios OUT ROWS
if __name__ == "__main__":  # pragma: no cover
    target, count = Path(sys.argv[1]), int(sys.argv[2])
    write_trades_csv(target, count, synthetic_tickers(int(os.environ.get("TICKERS", "500"))), 7)
