"""Currency codes as services report them, and what one unit is worth in its major currency.

Yahoo quotes London listings in pence (`GBp`), Johannesburg in cents (`ZAc`) and Tel Aviv in
agorot (`ILA`): 1/100 of GBP, ZAR and ILS. Money in a minor unit stays in that unit (the CSV's
PnL of such a ticker is in pence) and is never added to its major currency's totals; it is
converted through the major currency's exchange rate, divided by 100.
"""

from __future__ import annotations

MINOR_UNITS: dict[str, tuple[str, float]] = {
    "GBp": ("GBP", 0.01),
    "GBX": ("GBP", 0.01),
    "ZAc": ("ZAR", 0.01),
    "ZAC": ("ZAR", 0.01),
    "ILA": ("ILS", 0.01),
}
"""Minor unit → (major currency, value of one minor unit in the major one)."""

MAX_CODE_CHARS = 8


def currency_code(raw: object) -> str | None:
    """A currency code as a service wrote it (`USD`, `GBp`), or None when it is not one.

    Case matters (`GBp` is pence, `GBP` pounds), so codes are only trimmed; a major code written
    in lower case (`usd`) is upper-cased, since no service means anything else by it."""
    if not isinstance(raw, str):
        return None
    code = raw.strip()
    if not code or len(code) > MAX_CODE_CHARS or not code.isalpha() or not code.isascii():
        return None
    if code in MINOR_UNITS:
        return code
    return code.upper()


def major(code: str) -> tuple[str, float]:
    """(the major currency, the value of one unit of `code` in it): ("GBP", 0.01) for GBp."""
    return MINOR_UNITS.get(code, (code, 1.0))


def fx_symbol(currency: str, base: str) -> str:
    """Yahoo's symbol for the rate of one unit of `currency` in `base` (`AUDUSD=X`)."""
    return f"{currency}{base}=X"
