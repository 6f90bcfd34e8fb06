"""How stage 1's figures are rounded and derived: the formulas shared by every section.

Report rounding: money to the cent, returns and ratios to 6 places. Sums are accumulated in
float64 per chunk, so rounding also makes the report independent of the chunk size. Nothing
non-finite ever leaves here: every input number is below 1e15 in magnitude (the decoder refuses
larger ones), so no sum or ratio of them can overflow, and `finite` asserts it.
"""

from __future__ import annotations

import math

MONEY_PLACES = 2
RATIO_PLACES = 6


def finite(value: float) -> float:
    """The report never carries NaN/inf; callers guarantee finiteness, this asserts it loudly."""
    if not math.isfinite(value):
        raise ValueError(f"non-finite value {value!r} reached the report")
    return value + 0.0  # turns -0.0 into 0.0


def money(value: float) -> float:
    """Rounded to cents (Python's rounding, also for a NumPy scalar: see `ratio`)."""
    return finite(round(float(value), MONEY_PLACES))


def ratio(value: float | None) -> float | None:
    # float(): a NumPy scalar would round the NumPy way (scale, round, divide), which can land
    # on the other side of a near-half from Python's correctly rounded `round` — and slowly.
    return None if value is None else finite(round(float(value), RATIO_PLACES))


def mean_of(total: float, count: float) -> float | None:
    return None if count <= 0 else total / count


def win_rate_of(wins: int, losses: int) -> float | None:
    """wins / (wins + losses); None when no closed trade was decisive (not 0, not made up)."""
    decided = wins + losses
    return None if decided == 0 else wins / decided


def expectancy_of(
    wins: int, losses: int, average_win: float | None, average_loss: float | None
) -> float | None:
    """win_rate × average win + (1 − win_rate) × average loss (None without a decisive trade)."""
    rate = win_rate_of(wins, losses)
    if rate is None:
        return None
    value = 0.0
    if wins and average_win is not None:
        value += rate * average_win
    if losses and average_loss is not None:
        value += (1 - rate) * average_loss
    return value
