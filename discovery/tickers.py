"""Ticker symbols: the one place that decides what a plausible symbol is.

A ticker becomes part of a file path (`{TICKER}_{YYYYMMDD}.md`) and of cache keys, so it is
validated before any such use: letters, digits, and the separators real symbols use (`BRK-B`,
`MQG.AX`, `BTC-USD`, `^VIX`, `GC=F`). A slash, a space or `..` is never accepted.
"""

from __future__ import annotations

import re

# Upper-cased symbol: an optional caret (indices such as ^VIX), a letter or digit, then up to 19
# letters, digits, dots, hyphens or equals signs (futures/FX: GC=F, EURUSD=X).
_TICKER_RE = re.compile(r"^\^?[A-Z0-9][A-Z0-9.\-=]{0,19}$")


def normalize_ticker(raw: str) -> str:
    """Strip and upper-case a ticker as written in a CSV or file name."""
    return raw.strip().upper()


def is_valid_ticker(ticker: str) -> bool:
    """True for a plausible, path-safe symbol (already normalized)."""
    if not _TICKER_RE.fullmatch(ticker):
        return False
    # No path tricks: `..` anywhere, or a leading/trailing dot.
    return ".." not in ticker and not ticker.startswith(".") and not ticker.endswith(".")


def is_crypto_ticker(ticker: str) -> bool:
    """`BTC-USD`-style pairs quoted against a fiat currency are crypto."""
    base, sep, quote = ticker.partition("-")
    return bool(sep) and quote in {"USD", "USDT", "USDC", "EUR", "GBP"} and base.isalpha()
