"""The accumulator: everything kept between chunks (O(tickers + open positions + kept issues)).

`add` runs one chunk through the steps in order — decode, count per ticker, the foldable
per-strategy and per-month sums, the data-quality checks, the open positions — each a small
vectorized function over the chunk; `finish` freezes the result into a `TradeBook`.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from discovery.errors import InputError
from discovery.ingest.analytics import (
    MONTH_MEASURES,
    STRATEGY_MEASURES,
    KeyedSums,
    TradeAnalytics,
    pack,
    unpack,
    whole,
)
from discovery.ingest.checks import Check, DuplicateIds, Outcome, outcome, row_checks, uuid_check
from discovery.ingest.chunk import (
    LONG,
    NO_DAY,
    SHORT,
    Decoder,
    Rows,
    day_from_epoch,
)
from discovery.ingest.closed_spill import ClosedSpill
from discovery.ingest.closed_trades import closed_chunks, record_extras
from discovery.ingest.columns import (
    RECORD_NUMBER_COLUMNS,
    RECORD_TEXT_COLUMNS,
    USED_COLUMNS,
    FloatArray,
)
from discovery.ingest.dialect import Dialect
from discovery.ingest.drawdown import ExitOrder
from discovery.ingest.figures import mean_of
from discovery.ingest.models import (
    MAX_KEPT_ISSUES,
    ActivePosition,
    DataQuality,
    Issue,
    PerformanceMetrics,
    PortfolioSummary,
    TickerStats,
    TradeBook,
)


class Accumulator:
    def __init__(
        self,
        path: Path,
        dialect: Dialect,
        as_of: date | None,
        scratch: Path | None = None,
        *,
        records: ClosedSpill | None = None,
    ) -> None:
        self.path = path
        self.dialect = dialect
        self.as_of = as_of
        self.records = records
        extras = () if records is None else record_extras(dialect.columns)
        self.columns: tuple[str, ...] = USED_COLUMNS + extras
        """What pandas reads: the book's columns, and the record-only ones when kept."""
        self.decoder = Decoder(path, dialect, self.columns)
        self.has = frozenset(c for c in self.decoder.has if c in USED_COLUMNS)
        self.record_texts = tuple(c for c in extras if c in RECORD_TEXT_COLUMNS)
        self.record_numbers = tuple(c for c in extras if c in RECORD_NUMBER_COLUMNS)
        self.first_entry = np.zeros(0, dtype=np.int64)
        self.last_exit = np.zeros(0, dtype=np.int64)
        self.by_strategy = KeyedSums(STRATEGY_MEASURES)
        self.by_month = KeyedSums(MONTH_MEASURES)
        self.duplicates = DuplicateIds()
        self.exits = ExitOrder(scratch)
        self.open_uuids: dict[int, list[str]] = {}
        self.strategies: Counter[str] = Counter()
        self.active_positions: list[ActivePosition] = []
        self.issues: list[Issue] = []
        self.issue_counts: Counter[str] = Counter()
        self.rows_read = 0
        self.rows_with_issues = 0

    # -- one chunk ----------------------------------------------------------------------------

    def add(self, frame: pd.DataFrame, *, tolerant: bool) -> None:
        rows = self.decoder.decode(
            frame,
            tolerant=tolerant,
            on_repeated_header=self._repeated,
            text_columns=self.record_texts,
            lenient_numbers=self.record_numbers,
        )
        if rows is None:
            return
        out = outcome(rows)
        if self.records is not None:
            for part in closed_chunks(rows, out):
                self.records.add(part)
        self._grow()
        self._count(rows, out)
        self._fold_sums(rows, out)
        checks = row_checks(rows, out, self.has)
        checks.append(uuid_check(rows))
        checks.append(self.duplicates.check(rows))
        self._record(rows, checks)
        for i in np.flatnonzero(out.opened):  # few: a per-row loop only over them
            self._open_position(rows, int(i))

    def _repeated(self, row: int) -> None:
        self.issue_counts["repeated_header"] += 1
        if len(self.issues) < MAX_KEPT_ISSUES:
            self.issues.append(
                Issue(row, None, "Ticker", "repeated_header", "repeated header line skipped")
            )

    def _grow(self) -> None:
        size = len(self.decoder.ticker_ids)
        extra = size - len(self.first_entry)
        if extra <= 0:
            return
        self.first_entry = np.concatenate(
            [self.first_entry, np.full(extra, np.iinfo(np.int64).max, np.int64)]
        )
        self.last_exit = np.concatenate([self.last_exit, np.full(extra, NO_DAY, np.int64)])

    def _count(self, rows: Rows, out: Outcome) -> None:
        """Per-ticker first entry / last exit, and the strategy distribution (vectorized)."""
        gid = rows.gid
        np.minimum.at(self.first_entry, gid, rows.entry_day)
        exited = out.closed & (rows.exit_day != NO_DAY)
        np.maximum.at(self.last_exit, gid[exited], rows.exit_day[exited])
        self.rows_read += len(rows)
        for sid_label, used in zip(
            rows.strategies, np.bincount(rows.g_codes, minlength=len(rows.strategies)), strict=True
        ):
            if sid_label is not None and used:
                self.strategies[sid_label] += int(used)

    def _fold_sums(self, rows: Rows, out: Outcome) -> None:
        """The sums per (strategy, ticker) — every per-ticker and portfolio figure is a fold of
        them — per (exit month, ticker), and the exit order for the drawdown."""
        pnl, ret = rows.number["PnL"], rows.number["Return"]
        has_ret = ~np.isnan(ret)
        win_ret, loss_ret = out.win & has_ret, out.loss & has_ret
        held = ~np.isnan(out.holding_days)
        self.by_strategy.add(
            pack(rows.sid + 1, rows.gid),
            {
                "total": None,
                "closed": out.closed,
                "wins": out.win,
                "losses": out.loss,
                "breakevens": out.even,
                "pnl": np.where(out.has_pnl, pnl, 0.0),
                "ret": np.where(out.closed & has_ret, ret, 0.0),
                "gross_profit": np.where(out.win, pnl, 0.0),
                "gross_loss": np.where(out.loss, -pnl, 0.0),
                "win_return": np.where(win_ret, ret, 0.0),
                "win_return_n": win_ret,
                "loss_return": np.where(loss_ret, ret, 0.0),
                "loss_return_n": loss_ret,
                "holding_days": np.where(held, out.holding_days, 0.0),
                "holding_n": held,
                "open": out.opened,
            },
        )
        curve = np.flatnonzero(out.has_pnl & (rows.exit_day != NO_DAY))
        self.exits.add(rows.exit_stamp[curve], rows.rows[curve], rows.gid[curve], pnl[curve])
        exited = np.flatnonzero(out.closed & (rows.exit_day != NO_DAY))
        if len(exited):
            # months per distinct exit label (a calendar conversion), then per row by its code
            month_lut = rows.exit_lut.astype("datetime64[D]").astype("datetime64[M]")
            months = month_lut.astype(np.int64)[rows.x_codes[exited]]
            self.by_month.add(
                pack(months, rows.gid[exited]),
                {
                    "closed": None,
                    "wins": out.win[exited],
                    "losses": out.loss[exited],
                    "pnl": np.where(out.has_pnl[exited], pnl[exited], 0.0),
                },
            )

    def _record(self, rows: Rows, checks: list[Check]) -> None:
        """Count every flagged row; keep the earliest rows' issues up to MAX_KEPT_ISSUES."""
        any_issue = np.zeros(len(rows), dtype=bool)
        room = MAX_KEPT_ISSUES - len(self.issues)
        kept: list[Issue] = []
        for check in checks:
            flagged = np.flatnonzero(check.mask)
            if not len(flagged):
                continue
            any_issue |= check.mask
            self.issue_counts[check.kind] += len(flagged)
            for i in flagged[: max(room, 0)]:
                kept.append(
                    Issue(
                        int(rows.rows[i]),
                        rows.uuid.position(int(i)),
                        check.column,
                        check.kind,
                        check.message(int(i)),
                    )
                )
        if kept:
            kept.sort(key=lambda issue: issue.row)
            self.issues.extend(kept[: max(room, 0)])
        self.rows_with_issues += int(any_issue.sum())

    def _open_position(self, rows: Rows, i: int) -> None:
        numbers = rows.number

        def number(column: str) -> float | None:
            value = float(numbers[column][i])
            return None if math.isnan(value) else value

        entry = day_from_epoch(int(rows.entry_day[i]))
        csv_days = number("Days_Since_Entry")
        if self.as_of is not None:
            days: int | None = (self.as_of - entry).days
        else:
            days = None if csv_days is None else int(csv_days)
        position = rows.uuid.position(i)
        direction = int(rows.direction[i])
        self.active_positions.append(
            ActivePosition(
                row=int(rows.rows[i]),
                ticker=rows.tickers[rows.t_codes[i]],
                position_uuid=position,
                strategy=rows.strategies[rows.g_codes[i]],
                entry_date=entry,
                entry_price=number("Avg_Entry_Price"),
                position_size=number("Position_Size"),
                direction={LONG: "Long", SHORT: "Short"}.get(
                    direction, rows.d_labels[rows.d_codes[i]]
                ),
                days_since_entry=days,
                current_unrealized_pnl=number("Current_Unrealized_PnL"),
                csv_days_since_entry=None if csv_days is None else int(csv_days),
            )
        )
        if position is not None:
            self.open_uuids.setdefault(int(rows.gid[i]), []).append(position)

    # -- the result ---------------------------------------------------------------------------

    def finish(
        self, digest: str, *, tolerant: bool = False, ids_as_text: bool = False
    ) -> TradeBook:
        if self.rows_read == 0:
            raise InputError(
                f"{self.path}: has a header (row 1) but no trade rows.", path=self.path, row=1
            )
        sums = self.by_strategy.frozen()
        width = len(self.decoder.ticker_ids)
        _, gid = unpack(sums.keys)

        def per_ticker(name: str) -> FloatArray:
            return np.asarray(
                np.bincount(gid, weights=sums.column(name), minlength=width), dtype=np.float64
            )

        def portfolio(name: str) -> float:
            return float(sums.column(name).sum())

        t = {name: per_ticker(name) for name in ("total", "closed", "open", "wins", "losses",
                                                  "breakevens", "pnl", "ret")}  # fmt: skip
        stats: dict[str, TickerStats] = {}
        for ticker, k in sorted(self.decoder.ticker_ids.items()):
            last = int(self.last_exit[k])
            stats[ticker] = TickerStats(
                ticker=ticker,
                total_trades=whole(t["total"][k]),
                closed_trades=whole(t["closed"][k]),
                active_trades=whole(t["open"][k]),
                total_pnl=float(t["pnl"][k]),
                total_return=float(t["ret"][k]),
                wins=whole(t["wins"][k]),
                losses=whole(t["losses"][k]),
                breakevens=whole(t["breakevens"][k]),
                first_entry=day_from_epoch(int(self.first_entry[k])),
                last_exit=None if last == NO_DAY else day_from_epoch(last),
                open_positions=tuple(self.open_uuids.get(k, ())),
            )
        exits = [s.last_exit for s in stats.values() if s.last_exit is not None]
        summary = PortfolioSummary(
            total_trades=self.rows_read,
            closed_trades=whole(portfolio("closed")),
            active_trades=whole(portfolio("open")),
            unique_tickers=len(stats),
            first_entry_date=min(
                (s.first_entry for s in stats.values() if s.first_entry), default=None
            ),
            last_exit_date=max(exits, default=None),
        )
        metrics = PerformanceMetrics(
            total_wins=whole(portfolio("wins")),
            total_losses=whole(portfolio("losses")),
            total_breakevens=whole(portfolio("breakevens")),
            total_pnl=portfolio("pnl"),
            gross_profit=portfolio("gross_profit"),
            gross_loss=portfolio("gross_loss"),
            average_win_return=mean_of(portfolio("win_return"), portfolio("win_return_n")),
            average_loss_return=mean_of(portfolio("loss_return"), portfolio("loss_return_n")),
        )
        quality = DataQuality(
            rows_read=self.rows_read,
            rows_with_issues=self.rows_with_issues,
            skipped_rows=self.decoder.skipped_rows,
            issue_counts=MappingProxyType(dict(self.issue_counts)),
            issues=tuple(self.issues),
        )
        distribution = dict(sorted(self.strategies.items(), key=lambda kv: (-kv[1], kv[0])))
        positions = sorted(self.active_positions, key=lambda p: (p.entry_date, p.ticker, p.row))
        by_id = sorted(self.decoder.ticker_ids.items(), key=lambda kv: kv[1])
        strategies = sorted(self.decoder.strategy_ids.items(), key=lambda kv: kv[1])
        return TradeBook(
            source_path=self.path,
            sha256=digest,
            delimiter=self.dialect.delimiter,
            rows_read=self.rows_read,
            summary=summary,
            strategy_distribution=MappingProxyType(distribution),
            tickers=MappingProxyType(stats),
            metrics=metrics,
            active_positions=tuple(positions),
            quality=quality,
            analytics=TradeAnalytics(
                tickers=tuple(t for t, _ in by_id),
                strategies=tuple(s for s, _ in strategies),
                by_strategy=sums,
                by_month=self.by_month.frozen(),
            ),
            exits=self.exits,
            closed=self.records,
            source_bytes=self.dialect.size,
            numbers_as_text=tolerant,
            ids_as_text=ids_as_text,
        )
