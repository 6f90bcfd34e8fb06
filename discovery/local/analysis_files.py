"""Pure parsers for local analysis markdown: facts where stated, None where not.

Fundamental files come in two generations (with and without YAML front matter) and several
spellings of the same facts. Every fact is read from a *labelled* place — a recommendation
heading or label, a `Conviction:` / `Fair Value Range:` / `Primary Sector:` label, or front
matter — never from prose: a thesis sentence that mentions BUY is not a recommendation. A label
that is present but whose value cannot be read yields None plus a warning naming the line, so a
person can fix the file instead of the pipeline guessing.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator

from discovery.errors import echo
from discovery.local.sectors import canonical_sector
from services.recordclass import record

MAX_WARNINGS = 20
"""Warnings listed per file; beyond them one line says how many more there were."""

# Ratings as written by analysts, longest first so `STRONG BUY` wins over `BUY`.
RATINGS: tuple[str, ...] = (
    "STRONG BUY",
    "STRONG SELL",
    "MARKET PERFORM",
    "EQUAL WEIGHT",
    "UNDERPERFORM",
    "UNDERWEIGHT",
    "OUTPERFORM",
    "OVERWEIGHT",
    "ACCUMULATE",
    "NEUTRAL",
    "REDUCE",
    "HOLD",
    "SELL",
    "BUY",
)
_RATING_ALT = "|".join(r.replace(" ", r"[ \t_-]+") for r in RATINGS)
# A rating at the start of a value, then nothing or a qualifier ("with caution", "(upgraded)").
_RATING_RE = re.compile(rf"(?P<rating>{_RATING_ALT})\b(?P<rest>.*)", re.IGNORECASE)
_ANY_RATING_RE = re.compile(rf"\b(?:{_RATING_ALT})\b", re.IGNORECASE)

_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"


def _money(name: str) -> str:
    """An amount with an optional currency prefix (`$1,095`, `A$205.50`, `212.41`)."""
    return rf"(?:[A-Z]{{0,3}}\$)?[ \t]*(?P<{name}>{_NUM})"


# Line-start labels: optional blockquote, bullet, heading hashes and bold/underline markers around
# the label; then a colon (inside or outside the bold). `value` is the rest of the line.
_LABEL_RE = re.compile(
    r"^[ \t]*(?:>[ \t]*)*(?:[-*+][ \t]+)?(?:#{1,6}[ \t]+)?(?:\*\*|__)?[ \t]*"
    r"(?P<label>(?:primary|investment|final|overall)[ \t]+recommendation|recommendation"
    r"|conviction|fair[ \t]+value[ \t]+range|fair[ \t]+value|current[ \t]+price"
    r"|primary[ \t]+sector|sector)"
    r"[ \t]*(?:\*\*|__)?[ \t]*:[ \t]*(?:\*\*|__)?(?P<value>[^\n]*)$",
    re.IGNORECASE | re.MULTILINE,
)
_HEADING_RE = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<title>[^\n]*)$", re.MULTILINE)
_SCORE_RE = re.compile(
    rf"^(?P<value>{_NUM})[ \t]*(?:(?P<pct>%)|/[ \t]*(?P<scale>{_NUM}))?(?![\d.,/%])",
    re.IGNORECASE,
)
_INLINE_CONVICTION_RE = re.compile(
    r"conviction[ \t]*(?:\*\*|__)?[ \t]*:[ \t]*(?:\*\*|__)?[ \t]*(?P<score>[^|\n]*)", re.IGNORECASE
)
_INLINE_CONFIDENCE_RE = re.compile(
    r"confidence[ \t]*(?:\*\*|__)?[ \t]*:[ \t]*(?:\*\*|__)?[ \t]*(?P<score>[^|\n]*)", re.IGNORECASE
)
_RANGE_RE = re.compile(
    r"^[ \t]*" + _money("low") + r"[ \t]*(?:-|–|—|to)[ \t]*" + _money("high"),
    re.IGNORECASE,
)
_CURRENT_IN_RANGE_RE = re.compile(
    r"\([ \t]*current(?:[ \t]+price)?[ \t]*:[ \t]*" + _money("price"), re.IGNORECASE
)
_PRICE_RE = re.compile(r"^[ \t]*" + _money("price"))
# Top-level `key: value` lines of front matter (indented lines are nested YAML: skipped).
_FRONT_KEY_RE = re.compile(
    r"^(?P<key>[A-Za-z_][\w-]*)[ \t]*:[ \t]*(?P<value>[^\s][^\n]*)", re.MULTILINE
)
_FRONT_END_RE = re.compile(r"\n(?:---|\.\.\.)[ \t]*\r?(?:\n|\Z)")


@record
class FundamentalFacts:
    """What a fundamental file states. `sector` is canonical (discovery.local.sectors)."""

    recommendation: str | None = None
    conviction: float | None = None
    fair_value_low: float | None = None
    fair_value_high: float | None = None
    current_price: float | None = None
    sector: str | None = None
    warnings: tuple[str, ...] = ()


@record
class SectorFacts:
    """What a sector file states: its recommendation and the confidence given with it (0–1)."""

    recommendation: str | None = None
    confidence: float | None = None
    warnings: tuple[str, ...] = ()


# --- small pure helpers -------------------------------------------------------------------------


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _clean(value: str) -> str:
    """A label's value without markdown emphasis or a trailing `| …` continuation."""
    return value.split("|", 1)[0].replace("**", "").replace("__", "").strip(" \t\r*_")


def parse_rating(value: str) -> str | None:
    """`BUY`, `**STRONG BUY**`, `HOLD with caution`, `Sell (downgraded)` → the upper-case rating.

    None when the value does not start with a known rating, or names a second one (`BUY or HOLD`).
    """
    m = _RATING_RE.match(_clean(value))
    if m is None or _ANY_RATING_RE.search(m.group("rest")):
        return None
    rest = m.group("rest").strip()
    if rest and not (rest[0] in "([{-–—,;:.!/" or rest.lower().startswith("with ")):
        return None
    return " ".join(re.split(r"[ \t_-]+", m.group("rating").upper()))


def parse_score(value: str) -> float | None:
    """`0.91/1.0`, `9.1/10.0`, `9/10`, `85%`, `0.8` → a 0–1 float; None for scale-less `9.1`."""
    m = _SCORE_RE.match(_clean(value))
    if m is None:
        return None
    number = _number(m.group("value"))
    if m.group("pct"):
        scale = 100.0
    elif m.group("scale"):
        scale = _number(m.group("scale"))
    else:
        scale = 1.0
    if scale <= 0 or number > scale:
        return None
    return round(number / scale, 4)


def split_front_matter(text: str) -> tuple[dict[str, str], str, int]:
    """YAML front matter's top-level `key: value` pairs, the body, and the body's first line.

    Only flat scalars are needed (sector, recommendation, conviction), so no YAML library: nested
    keys and lists are skipped. Text without a closed `---` block has no front matter.
    """
    if not text.startswith("---"):
        return {}, text, 1
    first_nl = text.find("\n")
    if first_nl < 0 or text[:first_nl].strip() != "---":
        return {}, text, 1
    end = _FRONT_END_RE.search(text, first_nl)
    if end is None:
        return {}, text, 1
    pairs: dict[str, str] = {}
    for m in _FRONT_KEY_RE.finditer(text, first_nl + 1, end.start()):
        pairs.setdefault(m.group("key").lower(), m.group("value").strip().strip("'\""))
    body_start = end.end()  # past the closing line's newline
    return pairs, text[body_start:], text.count("\n", 0, body_start) + 1


# --- recommendation sections (the `**BUY**` / bare `STRONG BUY` forms) ---------------------------

_BOLD_LINE_RE = re.compile(r"^[ \t]*(?:[-*+][ \t]+)?(?:\*\*|__)(?P<inner>[^*_\n]+)(?:\*\*|__)")
_BARE_LINE_RE = re.compile(
    rf"^[ \t]*(?:[-*+][ \t]+)?(?P<inner>(?:{_RATING_ALT})(?:[ \t]+with .*)?)$"
)


_RATING_LINE_RE = re.compile(
    rf"^[ \t]*(?:[-*+][ \t]+)?(?:\*\*|__|(?:{_RATING_ALT}))[^\n]*", re.MULTILINE
)


def _standalone_rating(line: str) -> str | None:
    """A line that *is* a rating: `**BUY**`, `**HOLD with caution** — …`, or bare `STRONG BUY`."""
    m = _BOLD_LINE_RE.match(line)
    if m is not None:
        inner = m.group("inner").strip()
        rating = _RATING_RE.fullmatch(inner)
        if rating and (
            not rating.group("rest") or rating.group("rest").lower().startswith(" with ")
        ):
            return parse_rating(inner)
        return None
    # Bare ratings must be written in capitals: `Hold with both hands` is prose.
    m = _BARE_LINE_RE.match(line.rstrip(" \t\r.!"))
    return parse_rating(m.group("inner")) if m else None


def _section_rating(body: str) -> str | None:
    """The first standalone rating line inside a section whose heading mentions a recommendation.

    A section runs until the next heading of the same or a higher level. Section ends come from
    one pass with a stack of open headings, and with six heading levels a line lies in at most
    six sections, so the time is linear in the file (200,000 headings included).
    """
    headings = list(_HEADING_RE.finditer(body))
    ends = [len(body)] * len(headings)
    open_: list[tuple[int, int]] = []  # (level, index) of headings whose section is open
    for i, heading in enumerate(headings):
        level = len(heading.group("hashes"))
        while open_ and open_[-1][0] >= level:
            ends[open_.pop()[1]] = heading.start()
        open_.append((level, i))
    for i, heading in enumerate(headings):
        title = heading.group("title").lower()
        if "recommendation" not in title and "rating" not in title:
            continue
        # Only lines that can be a rating (bold, or starting with a rating word) are examined.
        for candidate in _RATING_LINE_RE.finditer(body, heading.end() + 1, ends[i]):
            rating = _standalone_rating(candidate.group(0))
            if rating is not None:
                return rating
    return None


# --- the parsers ----------------------------------------------------------------------------------


# A cheap first pass finds the lines that can hold a label: after markdown markers they start
# with the first four letters of a label word. It is written as one character class per letter
# (a superset of the words, no IGNORECASE, no alternation) because that is what the regex engine
# scans fastest; the full label pattern then runs only on those lines. Trying `_LABEL_RE` on
# every line of every file was most of the inventory's time.
_LABEL_WORDS = (
    "primary",
    "investment",
    "final",
    "overall",
    "recommendation",
    "conviction",
    "fair",
    "current",
    "sector",
)
_CANDIDATE_RE = re.compile(
    r"\n[ \t>*#_+-]*"
    + "".join(
        "["
        + "".join(sorted({w[k] for w in _LABEL_WORDS} | {w[k].upper() for w in _LABEL_WORDS}))
        + "]"
        for k in range(4)
    )
)


def _label_matches(body: str) -> Iterator[re.Match[str]]:
    """`_LABEL_RE` matches in document order, tried only on candidate lines."""
    # In "\n" + body, a candidate's start (its newline) is the line's offset in `body`.
    for candidate in _CANDIDATE_RE.finditer("\n" + body):
        m = _LABEL_RE.match(body, candidate.start())
        if m is not None:
            yield m


class _Scan:
    """One pass over a file's labelled lines; first value wins, later conflicts become warnings.

    Mutable scratch state that never leaves this module; the parsers return frozen facts.
    """

    def __init__(self, text: str, *, fundamental: bool) -> None:
        self.front, self.body, self._first_line = split_front_matter(text)
        self.fundamental = fundamental
        self.warnings: list[str] = []
        self._warned = 0
        self._line_starts: list[int] | None = None
        self.recommendation: str | None = None
        self._recommendation_at = 0  # offset in body of the recommendation that was taken
        self.conviction: float | None = None
        self.confidence: float | None = None
        self.low: float | None = None
        self.high: float | None = None
        self.price: float | None = None
        self.sector: str | None = None
        self.sector_label: str | None = None
        for m in _label_matches(self.body):
            self._label(" ".join(m.group("label").lower().split()), m.group("value"), m.start())
        if self.recommendation is None and self.front.get("recommendation"):
            self.recommendation = parse_rating(self.front["recommendation"])
            if self.recommendation is None:
                self.warn(
                    "front matter", "recommendation", self.front["recommendation"], "a rating"
                )
        if self.recommendation is None:
            self.recommendation = _section_rating(self.body)

    def _where(self, at: int | str) -> str:
        """`line N` for an offset in the body (line starts are found once, when first needed)."""
        if isinstance(at, str):
            return at
        if self._line_starts is None:
            self._line_starts = [m.end() for m in re.finditer("\n", self.body)]
        line = self._first_line + bisect.bisect_right(self._line_starts, at)
        return f"line {line}"

    def note(self, text: str) -> None:
        """Keep a warning; past MAX_WARNINGS only count it (a file of 200,000 bad labels must
        not become a report of 200,000 warnings)."""
        self._warned += 1
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(text)

    def warn(self, at: int | str, what: str, value: str, expected: str) -> None:
        if self._warned >= MAX_WARNINGS:
            self._warned += 1
            return
        self.note(f"{self._where(at)}: {what} {echo(_clean(value))} is not {expected}")

    def finished_warnings(self) -> tuple[str, ...]:
        extra = self._warned - len(self.warnings)
        if extra > 0:
            return (*self.warnings, f"{extra} more warnings not listed")
        return tuple(self.warnings)

    def score(self, value: str, what: str, where: int | str) -> float | None:
        score = parse_score(value)
        if score is None:
            self.warn(where, what, value, "a score on a stated scale (e.g. 0.8/1.0 or 8/10)")
        return score

    def _label(self, label: str, value: str, where: int) -> None:
        if label.endswith("recommendation"):
            self._recommendation(value, where)
        elif not self.fundamental:
            return
        elif label == "conviction":
            if self.conviction is None:
                self.conviction = self.score(value, "conviction", where)
        elif label.startswith("fair value"):
            self._fair_value(value, where)
        elif label == "current price":
            price = _PRICE_RE.match(_clean(value))
            if price is None:
                self.warn(where, "current price", value, "a price")
            elif self.price is None:
                self.price = _number(price.group("price"))
        elif self.sector_label is None:  # `primary sector` or `sector`
            self.sector_label = _clean(value)
            self.sector = canonical_sector(self.sector_label)
            if self.sector is None:
                self.warn(where, "sector", value, "a known sector")

    def _recommendation(self, value: str, where: int) -> None:
        rating = parse_rating(value)
        if rating is None:
            self.warn(where, "recommendation", value, "a known rating")
        elif self.recommendation is None:
            self.recommendation, self._recommendation_at = rating, where
            if self.fundamental:
                inline = _INLINE_CONVICTION_RE.search(value)
                if inline and self.conviction is None:
                    self.conviction = self.score(inline.group("score"), "conviction", where)
            else:
                inline = _INLINE_CONFIDENCE_RE.search(value)
                if inline:
                    self.confidence = self.score(inline.group("score"), "confidence", where)
        elif rating != self.recommendation:
            if self._warned >= MAX_WARNINGS:
                self._warned += 1
                return
            self.note(
                f"{self._where(where)}: recommendation {rating} disagrees with "
                f"{self.recommendation} ({self._where(self._recommendation_at)}); using the first"
            )

    def _fair_value(self, value: str, where: int) -> None:
        current = _CURRENT_IN_RANGE_RE.search(value)
        if current and self.price is None:
            self.price = _number(current.group("price"))
        if self.low is not None:
            return
        rng = _RANGE_RE.match(_clean(value))
        if rng is None:
            self.warn(where, "fair value", value, "a 'low - high' range")
            return
        low, high = _number(rng.group("low")), _number(rng.group("high"))
        if low > high:
            self.warn(where, "fair value range", value, "in low - high order")
        else:
            self.low, self.high = low, high


def parse_fundamental(text: str) -> FundamentalFacts:
    """Recommendation, conviction (0–1), fair value range, current price and sector of a file."""
    scan = _Scan(text, fundamental=True)
    conviction = scan.conviction
    if conviction is None and scan.front.get("conviction"):
        conviction = scan.score(scan.front["conviction"], "conviction", "front matter")
    sector = scan.sector
    label = scan.front.get("sector") or scan.front.get("primary_sector")
    if label:
        front_sector = canonical_sector(label)
        if front_sector is None:
            scan.warn("front matter", "sector", label, "a known sector")
        elif sector is not None and sector != front_sector:
            scan.note(
                f"front matter sector {front_sector} disagrees with the body's {sector}; "
                "using the front matter"
            )
        sector = front_sector or sector
    return FundamentalFacts(
        recommendation=scan.recommendation,
        conviction=conviction,
        fair_value_low=scan.low,
        fair_value_high=scan.high,
        current_price=scan.price,
        sector=sector,
        warnings=scan.finished_warnings(),
    )


def parse_sector_file(text: str) -> SectorFacts:
    """A sector file's recommendation and the confidence stated on the recommendation line."""
    scan = _Scan(text, fundamental=False)
    confidence = scan.confidence
    if confidence is None and scan.front.get("confidence"):
        confidence = scan.score(scan.front["confidence"], "confidence", "front matter")
    return SectorFacts(
        recommendation=scan.recommendation, confidence=confidence, warnings=scan.finished_warnings()
    )
