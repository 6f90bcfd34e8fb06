"""The data-quality checks: pure functions from one chunk's rows to the rows each check flags.

A check never refuses the file (that is the decoder's job): it names rows that are readable but
inconsistent, each with a kind, the column to look at and a message built only for the issues
that are kept. docs/ingest_rules.md lists them; `ISSUE_KINDS` is their one declaration.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from discovery.errors import echo
from discovery.ingest.chunk import (
    CLOSED,
    NO_DAY,
    OPEN,
    SHORT,
    UNKNOWN,
    Rows,
    day_from_epoch,
    missing,
    window_label,
)
from discovery.ingest.columns import BoolArray, FloatArray, IntArray
from services.recordclass import record

PNL_TOLERANCE = 0.01
"""Breakeven band and PnL-check tolerance; compared with a 1e-9 float allowance."""
TOL = PNL_TOLERANCE + 1e-9
RETURN_TOLERANCE = 0.001
"""Return vs PnL ÷ (entry × size), and MFE/MAE vs Return (values are exported rounded)."""
DURATION_TOLERANCE_DAYS = 1.0

ISSUE_KINDS: tuple[str, ...] = (
    "repeated_header",
    "missing_value",
    "unknown_status",
    "unknown_direction",
    "closed_without_exit",
    "open_with_exit",
    "missing_pnl",
    "pnl_mismatch",
    "return_mismatch",
    "duration_mismatch",
    "mfe_out_of_range",
    "mae_out_of_range",
    "uuid_mismatch",
    "duplicate_uuid",
)


@record
class Check:
    """Rows of one chunk flagged by one check; `message(i)` is built only for kept issues."""

    kind: str
    column: str
    mask: BoolArray
    message: Callable[[int], str]


@record
class Outcome:
    """How each row of a chunk counts: the classification the aggregates and checks share."""

    closed: BoolArray
    opened: BoolArray
    has_pnl: BoolArray  # closed with a PnL: in the metrics
    win: BoolArray
    loss: BoolArray
    even: BoolArray
    holding_days: FloatArray  # exit day − entry day of closed trades (NaN without an exit)


def outcome(rows: Rows) -> Outcome:
    closed = rows.status == CLOSED
    pnl = rows.number["PnL"]
    has_pnl = closed & ~np.isnan(pnl)
    win = has_pnl & (pnl > TOL)
    loss = has_pnl & (pnl < -TOL)
    exited = closed & (rows.exit_day != NO_DAY)
    holding = np.where(exited, (rows.exit_day - rows.entry_day).astype(np.float64), np.nan)
    return Outcome(
        closed=closed,
        opened=rows.status == OPEN,
        has_pnl=has_pnl,
        win=win,
        loss=loss,
        even=has_pnl & ~win & ~loss,
        holding_days=holding,
    )


def row_checks(rows: Rows, out: Outcome, has: frozenset[str]) -> list[Check]:
    """Every per-row check but the Position_UUID ones, in report order."""
    checks = [
        Check(
            "missing_value", "Position_UUID", rows.uuid.missing, lambda i: "Position_UUID is empty"
        ),
        Check(
            "missing_value",
            "Strategy_Type",
            missing(rows.g_codes, rows.strategies),
            lambda i: "Strategy_Type is empty",
        ),
        _status_check(rows),
    ]
    if "Direction" in has:
        checks.append(_direction_check(rows))
    checks.extend(_exit_checks(rows, out, has))
    if "PnL" in has:
        checks.append(
            Check(
                "missing_pnl",
                "PnL",
                out.closed & np.isnan(rows.number["PnL"]),
                lambda i: "closed trade without a PnL; left out of the performance metrics",
            )
        )
    checks.append(_pnl_check(rows, out))
    checks.append(_return_check(rows, out))
    checks.append(_duration_check(rows, out))
    checks.extend(_excursion_checks(rows, out))
    return checks


def _status_check(rows: Rows) -> Check:
    labels, codes = rows.s_labels, rows.s_codes

    def message(i: int) -> str:
        label = labels[codes[i]]
        if label is None:
            return "Status is empty; the trade counts in total_trades only"
        return (
            f"Status {echo(label)} is not Closed, Open or Active; the trade counts in "
            "total_trades only"
        )

    return Check("unknown_status", "Status", rows.status == UNKNOWN, message)


def _direction_check(rows: Rows) -> Check:
    labels, codes = rows.d_labels, rows.d_codes

    def message(i: int) -> str:
        label = labels[codes[i]]
        if label is None:
            return "Direction is empty"
        return f"Direction {echo(label)} is neither Long nor Short"

    return Check("unknown_direction", "Direction", rows.direction == UNKNOWN, message)


def _exit_checks(rows: Rows, out: Outcome, has: frozenset[str]) -> list[Check]:
    exit_px = rows.number["Avg_Exit_Price"]
    has_exit_day = rows.exit_day != NO_DAY
    has_exit_px = ~np.isnan(exit_px)
    no_exit_px = ~has_exit_px if "Avg_Exit_Price" in has else np.zeros(len(rows), dtype=bool)
    return [
        Check(
            "closed_without_exit",
            "Exit_Timestamp",
            out.closed & ~has_exit_day,
            lambda i: "closed trade without an Exit_Timestamp",
        ),
        Check(
            "closed_without_exit",
            "Avg_Exit_Price",
            out.closed & has_exit_day & no_exit_px,
            lambda i: "closed trade without an Avg_Exit_Price",
        ),
        Check(
            "open_with_exit",
            "Exit_Timestamp",
            out.opened & (has_exit_day | has_exit_px),
            lambda i: "open trade has exit values (Exit_Timestamp or Avg_Exit_Price)",
        ),
    ]


def _pnl_check(rows: Rows, out: Outcome) -> Check:
    n = rows.number
    pnl, direction = n["PnL"], rows.direction
    sign = np.where(direction == SHORT, -1.0, 1.0)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = (n["Avg_Exit_Price"] - n["Avg_Entry_Price"]) * n["Position_Size"] * sign
        mask = (
            out.has_pnl
            & (direction != UNKNOWN)
            & ~np.isnan(expected)
            & (np.abs(pnl - expected) > TOL)
        )

    def message(i: int) -> str:
        short = " × −1 (Short)" if direction[i] == SHORT else ""
        return (
            f"PnL {pnl[i]:g} differs from (exit − entry) × size{short} = {expected[i]:.4f} "
            f"by more than {PNL_TOLERANCE}"
        )

    return Check("pnl_mismatch", "PnL", mask, message)


def _return_check(rows: Rows, out: Outcome) -> Check:
    n = rows.number
    ret = n["Return"]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        cost = n["Avg_Entry_Price"] * n["Position_Size"]
        implied = n["PnL"] / cost
        mask = (
            out.has_pnl
            & (cost != 0)
            & np.isfinite(implied)
            & ~np.isnan(ret)
            & (np.abs(ret - implied) > RETURN_TOLERANCE + 1e-12)
        )

    def message(i: int) -> str:
        return (
            f"Return {ret[i]:g} differs from PnL ÷ (entry × size) = {implied[i]:.6f} "
            f"by more than {RETURN_TOLERANCE}"
        )

    return Check("return_mismatch", "Return", mask, message)


def _duration_check(rows: Rows, out: Outcome) -> Check:
    stated = rows.number["Duration_Days"]
    days = out.holding_days
    with np.errstate(invalid="ignore"):
        mask = (
            ~np.isnan(days)
            & ~np.isnan(stated)
            & (np.abs(stated - days) > DURATION_TOLERANCE_DAYS + 1e-9)
        )
    entry, exit_ = rows.entry_day, rows.exit_day

    def message(i: int) -> str:
        return (
            f"Duration_Days {stated[i]:g} differs from the dates "
            f"({day_from_epoch(int(entry[i]))} to {day_from_epoch(int(exit_[i]))}: "
            f"{int(days[i])} days) by more than {DURATION_TOLERANCE_DAYS:g} day"
        )

    return Check("duration_mismatch", "Duration_Days", mask, message)


def _excursion_checks(rows: Rows, out: Outcome) -> list[Check]:
    """MFE and MAE are fractions of the entry price, never negative; over a closed trade the
    favourable excursion is at least the trade's own Return and the adverse one at least its
    loss (the price went there to end where it did)."""
    ret = np.where(out.closed, rows.number["Return"], np.nan)
    checks: list[Check] = []
    for column, kind, bound in (
        ("Max_Favourable_Excursion", "mfe_out_of_range", ret),
        ("Max_Adverse_Excursion", "mae_out_of_range", -ret),
    ):
        value = rows.number[column]
        with np.errstate(invalid="ignore"):
            negative = value < 0
            short_of = ~negative & (value < bound - RETURN_TOLERANCE - 1e-12)
        checks.append(
            Check(kind, column, negative | short_of, _excursion_message(column, value, ret))
        )
    return checks


def _excursion_message(column: str, value: FloatArray, ret: FloatArray) -> Callable[[int], str]:
    def message(i: int) -> str:
        if value[i] < 0:
            return f"{column} {value[i]:g} is negative (an excursion is a size, at least 0)"
        side = "gain" if column == "Max_Favourable_Excursion" else "loss"
        return f"{column} {value[i]:g} is smaller than the trade's own {side} (Return {ret[i]:g})"

    return message


# --------------------------------------------------------------------------------------------
# Position_UUID: its form, and whether it repeats.


def uuid_check(rows: Rows) -> Check:
    """Rows whose Position_UUID disagrees with `{TICKER}_{STRATEGY}_{SHORT}_{LONG}_{DATE}`.

    Fast path: the expected id is joined per row from three per-value tables (ticker and
    strategy, the two windows, the entry date) by numpy's string add and compared with the id as
    read; only rows that differ are examined one by one, case-insensitively and number-aware, to
    say which part disagrees.
    """
    uuid = rows.uuid
    present = ~uuid.missing
    tickers, t_codes = rows.tickers, rows.t_codes
    strategies, g_codes = rows.strategies, rows.g_codes
    short, long_ = rows.number["Short_Window"], rows.number["Long_Window"]
    day_labels: list[str] = np.datetime_as_string(rows.entry_lut.astype("datetime64[D]")).tolist()
    e_codes = rows.e_codes
    windows_ok = ~(np.isnan(short) | np.isnan(long_))
    strategy_missing = np.array([s is None for s in strategies], dtype=bool)[g_codes]
    full = present & windows_ok & ~strategy_missing
    candidates = present.copy()
    if full.any():
        width = len(strategies)
        p_codes, p_uniques = pd.factorize(t_codes * width + g_codes)
        prefix = [f"{tickers[int(p) // width]}_{strategies[int(p) % width]}_" for p in p_uniques]
        s_codes, s_uniques = pd.factorize(short, use_na_sentinel=False)
        l_codes, l_uniques = pd.factorize(long_, use_na_sentinel=False)
        span = len(l_uniques) + 1
        w_codes, w_uniques = pd.factorize(s_codes * span + l_codes)
        s_text = [f"{window_label(float(v))}_" for v in s_uniques]
        l_text = [f"{window_label(float(v))}_" for v in l_uniques]
        middle = [s_text[int(w) // span] + l_text[int(w) % span] for w in w_uniques]
        expected = uuid.equals_joined([(prefix, p_codes), (middle, w_codes), (day_labels, e_codes)])
        candidates = present & ~(full & expected)
    messages: dict[int, str] = {}
    bad = np.zeros(len(uuid), dtype=bool)
    for i in np.flatnonzero(candidates):
        disagreement = uuid_disagreement(
            uuid.written(int(i)),
            tickers[t_codes[i]],
            strategies[g_codes[i]],
            None if np.isnan(short[i]) else float(short[i]),
            None if np.isnan(long_[i]) else float(long_[i]),
            day_labels[e_codes[i]],
        )
        if disagreement:
            bad[i] = True
            messages[int(i)] = disagreement
    return Check("uuid_mismatch", "Position_UUID", bad, messages.__getitem__)


def _same_number(text: str, value: float) -> bool:
    try:
        return float(text) == value
    except ValueError:
        return False


def uuid_disagreement(
    uuid: str,
    ticker: str,
    strategy: str | None,
    short: float | None,
    long_: float | None,
    day: str | None,
) -> str:
    """Which parts of `{TICKER}_{STRATEGY}_{SHORT}_{LONG}_{YYYY-MM-DD}` disagree ('' if none)."""
    parts = uuid.strip().split("_")
    if len(parts) < 5:
        return (
            f"Position_UUID {echo(uuid)} is not in the form TICKER_STRATEGY_SHORT_LONG_YYYY-MM-DD"
        )
    u_ticker, u_strategy = parts[0], "_".join(parts[1:-3])
    u_short, u_long, u_day = parts[-3:]
    differences: list[str] = []
    if u_ticker.upper() != ticker:
        differences.append(f"Ticker {ticker!r} (UUID says {echo(u_ticker)})")
    if strategy is not None and u_strategy.upper() != strategy:
        differences.append(f"Strategy_Type {strategy!r} (UUID says {echo(u_strategy)})")
    if short is not None and not _same_number(u_short, short):
        differences.append(f"Short_Window {window_label(short)} (UUID says {echo(u_short)})")
    if long_ is not None and not _same_number(u_long, long_):
        differences.append(f"Long_Window {window_label(long_)} (UUID says {echo(u_long)})")
    if day is not None and u_day != day:
        differences.append(f"Entry_Timestamp date {day} (UUID says {echo(u_day)})")
    if not differences:
        return ""
    return f"Position_UUID {echo(uuid)} disagrees with the row: " + "; ".join(differences)


class DuplicateIds:
    """Position_UUIDs seen so far, as 8-byte digests in sorted runs (bounded: 8 bytes per id).

    The digest is keyed per process (`PositionIds.digests`); two different ids share one with
    odds around n² / 2⁶⁵ (below one in a million at 5M rows). Runs merge like a binary counter,
    so a lookup costs one binary search per run (O(log n) runs) and each digest is merged
    O(log n) times. The id is compared as written.
    """

    def __init__(self) -> None:
        self._runs: list[IntArray] = []

    def check(self, rows: Rows) -> Check:
        uuid = rows.uuid
        present = np.flatnonzero(~uuid.missing)
        digests = uuid.digests()
        # Sorted queries make the binary searches cache-friendly (about 8x faster than random).
        order = np.argsort(digests)
        ordered = digests[order]
        later = np.zeros(len(ordered), dtype=bool)
        later[1:] = ordered[1:] == ordered[:-1]  # a later copy within this chunk
        if later.any():  # the sort is not stable: rank each id's copies in row order
            copies = later.copy()
            copies[:-1] |= later[1:]
            at = np.flatnonzero(copies)
            order[at] = order[at][np.lexsort((order[at], ordered[at]))]
        for run in self._runs:
            at = np.minimum(np.searchsorted(run, ordered), len(run) - 1)
            later |= run[at] == ordered
        repeated = np.empty(len(ordered), dtype=bool)
        repeated[order] = later
        dup = np.zeros(len(rows), dtype=bool)
        dup[present] = repeated
        fresh = ordered[~later]  # first sightings: distinct, not seen before, still sorted
        if len(fresh):
            self._add(fresh)

        def message(i: int) -> str:
            return f"Position_UUID {echo(uuid.written(i))} already appears on an earlier row"

        return Check("duplicate_uuid", "Position_UUID", dup, message)

    def _add(self, run: IntArray) -> None:
        self._runs.append(run)
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            # Two sorted, disjoint runs: the stable sort finds both runs and merges them. In
            # place, once the runs are dropped: the peak is two runs' size, not three and a half.
            merged = np.concatenate([self._runs.pop(-2), self._runs.pop()])
            merged.sort(kind="stable")
            self._runs.append(merged)

    @property
    def digests(self) -> int:
        return sum(len(run) for run in self._runs)
