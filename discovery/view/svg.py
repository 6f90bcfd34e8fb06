"""Small SVG charts as strings (pure): a line chart, an area below zero, a bar chart.

x positions are the points' order (dates are labels, not a time scale): the charts show
sequences (trades in exit order, months, days with runs), where an even spacing reads best.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

Point = tuple[str, float]  # (label shown on hover, value)
Fmt = Callable[[float], str]
PALETTE = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#dc2626")
MAX_MARKS = 400  # hover circles beyond this would bloat the page; the line still shows all


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _scale(lo: float, hi: float, top: float, bottom: float) -> Callable[[float], float]:
    if hi == lo:
        hi, lo = hi + 1, lo - 1
    return lambda v: bottom - (v - lo) / (hi - lo) * (bottom - top)


def _frame(width: int, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
        + "".join(body)
        + "</svg>"
    )


def _axis(
    width: int, pad: int, y: Callable[[float], float], lo: float, hi: float, fmt: Fmt
) -> list[str]:
    out = []
    for v in sorted({lo, hi, 0.0} if lo < 0 < hi else {lo, hi}):
        yy = _num(y(v))
        out.append(
            f'<line x1="{pad}" x2="{width - 8}" y1="{yy}" y2="{yy}" class="grid"/>'
            f'<text x="{pad - 4}" y="{yy}" class="tick" text-anchor="end" '
            f'dominant-baseline="middle">{escape(fmt(v))}</text>'
        )
    return out


def line_chart(
    series: Sequence[tuple[str, Sequence[Point]]],
    *,
    width: int = 720,
    height: int = 220,
    fmt: Fmt = _num,
    label: str = "line chart",
) -> str:
    """One polyline per series over a shared y scale; every point (up to MAX_MARKS) hoverable."""
    values = [v for _, pts in series for _, v in pts]
    if not values:
        return ""
    pad, top, bottom = 64, 12, height - 24
    lo, hi = min(values), max(values)
    y = _scale(lo, hi, top, bottom)
    body = _axis(width, pad, y, lo, hi, fmt)
    for i, (name, pts) in enumerate(series):
        n = len(pts)
        step = (width - 8 - pad) / max(1, n - 1)
        xs = [pad + k * step if n > 1 else (pad + width - 8) / 2 for k in range(n)]
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{_num(x)},{_num(y(v))}" for x, (_, v) in zip(xs, pts, strict=True))
        body.append(
            f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2">'
            f"<title>{escape(name)}</title></polyline>"
        )
        every = max(1, n // MAX_MARKS)
        for k in range(0, n, every):
            text, v = pts[k]
            body.append(
                f'<circle cx="{_num(xs[k])}" cy="{_num(y(v))}" r="3" fill="{color}" class="mark">'
                f"<title>{escape(f'{name} · {text}: {fmt(v)}')}</title></circle>"
            )
        if pts:
            body.append(
                f'<text x="{pad}" y="{height - 6}" class="tick">{escape(pts[0][0])}</text>'
                f'<text x="{width - 8}" y="{height - 6}" class="tick" text-anchor="end">'
                f"{escape(pts[-1][0])}</text>"
            )
    return _frame(width, height, body, label)


def area_below_zero(
    points: Sequence[Point], *, width: int = 720, height: int = 120, fmt: Fmt = _num, label: str
) -> str:
    """A filled area from 0 down to each (non-positive) value: a drawdown ("underwater") chart."""
    if not points:
        return ""
    pad, top, bottom = 64, 8, height - 20
    lo = min(min(v for _, v in points), -1e-9)
    y = _scale(lo, 0.0, top, bottom)
    n = len(points)
    step = (width - 8 - pad) / max(1, n - 1)
    xs = [pad + k * step for k in range(n)]
    edge = " ".join(f"{_num(x)},{_num(y(v))}" for x, (_, v) in zip(xs, points, strict=True))
    poly = f"{_num(xs[0])},{_num(y(0))} {edge} {_num(xs[-1])},{_num(y(0))}"
    worst = min(range(n), key=lambda k: points[k][1])
    body = _axis(width, pad, y, lo, 0.0, fmt)
    body.append(f'<polygon points="{poly}" class="under"><title>{escape(label)}</title></polygon>')
    body.append(
        f'<circle cx="{_num(xs[worst])}" cy="{_num(y(points[worst][1]))}" r="4" class="worst">'
        f"<title>{escape(f'deepest: {points[worst][0]}: {fmt(points[worst][1])}')}</title></circle>"
    )
    return _frame(width, height, body, label)


def bar_chart(
    bars: Sequence[Point], *, width: int = 720, height: int = 200, fmt: Fmt = _num, label: str
) -> str:
    """Bars from zero (positive up in green, negative down in red), each with its value on hover."""
    if not bars:
        return ""
    pad, top, bottom = 64, 12, height - 24
    lo, hi = min(0.0, *(v for _, v in bars)), max(0.0, *(v for _, v in bars))
    y = _scale(lo, hi, top, bottom)
    body = _axis(width, pad, y, lo, hi, fmt)
    slot = (width - 8 - pad) / len(bars)
    for k, (text, v) in enumerate(bars):
        x = pad + k * slot + slot * 0.15
        y0, y1 = sorted((y(0), y(v)))
        cls = "pos" if v >= 0 else "neg"
        body.append(
            f'<rect x="{_num(x)}" y="{_num(y0)}" width="{_num(slot * 0.7)}" '
            f'height="{_num(max(y1 - y0, 0.5))}" class="{cls}">'
            f"<title>{escape(f'{text}: {fmt(v)}')}</title></rect>"
        )
        if len(bars) <= 24:
            body.append(
                f'<text x="{_num(x + slot * 0.35)}" y="{height - 6}" class="tick" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
    return _frame(width, height, body, label)
