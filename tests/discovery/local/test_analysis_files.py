"""Parse rules for local analysis markdown: labelled facts only, never guesses."""

from __future__ import annotations

import pytest

from discovery.local.analysis_files import (
    parse_fundamental,
    parse_rating,
    parse_score,
    parse_sector_file,
    split_front_matter,
)
from tests.conftest import FIXTURES

ANALYSIS = FIXTURES / "analysis"


# --- whole files ----------------------------------------------------------------------------------


def test_old_generation_file() -> None:
    facts = parse_fundamental((ANALYSIS / "old_generation.md").read_text(encoding="utf-8"))
    # The thesis says "we would BUY more" and the summary mentions SELL and STRONG BUY in prose:
    # only the labelled heading counts.
    assert facts.recommendation == "HOLD"
    assert facts.conviction == 0.64
    assert (facts.fair_value_low, facts.fair_value_high) == (41.5, 48.0)
    assert facts.current_price == 45.10
    assert facts.sector is None
    assert facts.warnings == ()


def test_new_generation_file_with_front_matter() -> None:
    facts = parse_fundamental((ANALYSIS / "new_generation.md").read_text(encoding="utf-8"))
    assert facts.recommendation == "STRONG BUY"
    assert facts.conviction == 0.91
    assert (facts.fair_value_low, facts.fair_value_high) == (1095.0, 1180.5)
    assert facts.current_price == 1002.25
    # front matter "Consumer Cyclical" and body "Consumer Discretionary" are the same sector
    assert facts.sector == "consumer_discretionary"
    assert facts.warnings == ()


def test_sector_file() -> None:
    facts = parse_sector_file((ANALYSIS / "sector_technology.md").read_text(encoding="utf-8"))
    assert facts.recommendation == "BUY"
    assert facts.confidence == 0.87
    assert facts.warnings == ()


def test_empty_text_states_nothing() -> None:
    facts = parse_fundamental("")
    assert facts.recommendation is None
    assert facts.conviction is None
    assert facts.fair_value_low is None and facts.fair_value_high is None
    assert facts.current_price is None and facts.sector is None
    assert facts.warnings == ()


# --- recommendation forms -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("### Recommendation: BUY | Conviction: 0.91/1.0", "BUY"),
        ("### Recommendation: **BUY**", "BUY"),
        ("## Recommendation: STRONG BUY", "STRONG BUY"),
        ("### Recommendation: Strong Sell", "STRONG SELL"),
        ("### Recommendation: STRONG_BUY", "STRONG BUY"),
        ("### Recommendation: HOLD with caution | Conviction: 6/10", "HOLD"),
        ("### Recommendation: HOLD (downgraded from BUY)", None),  # names a second rating
        ("### Recommendation: Sell (downgraded)", "SELL"),
        ("### Primary Recommendation: **SELL**", "SELL"),
        ("**Recommendation**: ACCUMULATE", "ACCUMULATE"),
        ("**Recommendation:** **REDUCE**", "REDUCE"),
        ("- **Investment Recommendation**: Outperform", "OUTPERFORM"),
        ("> Recommendation: NEUTRAL", "NEUTRAL"),
        ("Recommendation: buy", "BUY"),
    ],
)
def test_labelled_recommendation(text: str, expected: str | None) -> None:
    assert parse_fundamental(f"# T\n\n{text}\n").recommendation == expected


@pytest.mark.parametrize(
    "text",
    [
        "We would BUY this on any pullback.",
        "STRONG BUY signals were ignored by the market.",
        "- Investment recommendation consistency: HOLD recommendation preserved",
        "## 🏁 Investment Recommendation Summary\n\nApple is a HOLD at this price.",
        "| Rating | BUY |",
        "**Buy the dip** is not a plan.",
        "## Recommendation\n\nHold with both hands, said nobody.",
        "*Generated: 2026-01-01 | Confidence: 0.9/1.0*",
        "BUY",  # a bare rating outside any recommendation section
    ],
)
def test_prose_is_never_a_recommendation(text: str) -> None:
    assert parse_fundamental(f"# T\n\n{text}\n").recommendation is None


def test_bold_rating_in_recommendation_section() -> None:
    text = "# T\n\n## Recommendation\n\n**BUY**\n\n- **Conviction**: 0.8/1.0\n"
    facts = parse_fundamental(text)
    assert facts.recommendation == "BUY"
    assert facts.conviction == 0.8


def test_bold_rating_with_qualifier_in_rating_section() -> None:
    text = "# T\n\n## Rating\n\n**HOLD with caution** until the remedies are known.\n"
    assert parse_fundamental(text).recommendation == "HOLD"


def test_bare_capital_rating_in_recommendation_section() -> None:
    assert parse_fundamental("## Our Recommendation\n\nSTRONG BUY\n").recommendation == (
        "STRONG BUY"
    )


def test_recommendation_section_ends_at_next_heading_of_same_level() -> None:
    text = "## Recommendation\n\nSee below.\n\n## Risks\n\n**SELL**\n"
    assert parse_fundamental(text).recommendation is None


def test_recommendation_section_includes_subsections() -> None:
    text = "## Investment Thesis & Recommendation\n\n### Verdict\n\n**SELL**\n\n## Risks\n"
    assert parse_fundamental(text).recommendation == "SELL"


def test_labelled_form_wins_over_section_form() -> None:
    text = "## Recommendation\n\n**BUY**\n\n### Recommendation: HOLD\n"
    assert parse_fundamental(text).recommendation == "HOLD"


def test_unknown_rating_is_none_with_warning() -> None:
    facts = parse_fundamental("# T\n\n### Recommendation: Wait and see\n")
    assert facts.recommendation is None
    assert len(facts.warnings) == 1
    assert "line 3" in facts.warnings[0] and "Wait and see" in facts.warnings[0]


def test_conflicting_recommendations_keep_first_and_warn() -> None:
    facts = parse_fundamental("### Recommendation: BUY\n\ntext\n\n**Recommendation**: SELL\n")
    assert facts.recommendation == "BUY"
    assert len(facts.warnings) == 1
    assert "SELL" in facts.warnings[0] and "line 1" in facts.warnings[0]


def test_repeated_identical_recommendation_is_not_a_conflict() -> None:
    facts = parse_fundamental("### Recommendation: BUY\n\n**Recommendation**: **BUY**\n")
    assert facts.recommendation == "BUY"
    assert facts.warnings == ()


def test_front_matter_recommendation_is_a_fallback() -> None:
    text = "---\nrecommendation: Hold\nconviction: 7/10\n---\n# T\n"
    facts = parse_fundamental(text)
    assert facts.recommendation == "HOLD"
    assert facts.conviction == 0.7


# --- conviction -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("### Recommendation: BUY | Conviction: 0.91/1.0", 0.91),
        ("### Recommendation: BUY | Conviction: 9.1/10.0", 0.91),
        ("### Recommendation: BUY | Conviction: 9/10", 0.9),
        ("### Recommendation: BUY | Conviction: 85%", 0.85),
        ("### Recommendation: BUY | Conviction: 0.7", 0.7),
        ("### Recommendation: BUY | **Conviction**: **8/10**", 0.8),
        ("### Recommendation: BUY\n- **Conviction**: 6.5/10.0", 0.65),
        ("### Recommendation: BUY | Conviction: 10/10", 1.0),
        ("### Recommendation: BUY", None),
    ],
)
def test_conviction_scales(text: str, expected: float | None) -> None:
    assert parse_fundamental(text).conviction == expected


@pytest.mark.parametrize("score", ["9.1", "12/10", "high", "0.9/0", "1,5/10"])
def test_conviction_without_usable_scale_is_none_with_warning(score: str) -> None:
    facts = parse_fundamental(f"### Recommendation: BUY | Conviction: {score}\n")
    assert facts.recommendation == "BUY"
    assert facts.conviction is None
    assert len(facts.warnings) == 1 and "conviction" in facts.warnings[0]


def test_header_confidence_is_not_conviction() -> None:
    text = "*Generated: 2026-01-01 | Confidence: 9.6/10.0*\n\n### Recommendation: SELL\n"
    assert parse_fundamental(text).conviction is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.91/1.0", 0.91),
        ("9.1/10.0", 0.91),
        ("9/10", 0.9),
        ("50%", 0.5),
        ("1", 1.0),
        ("0", 0.0),
        ("3/5", 0.6),
        ("9.1", None),
        ("", None),
        ("n/a", None),
        ("101%", None),
    ],
)
def test_parse_score(value: str, expected: float | None) -> None:
    assert parse_score(value) == expected


# --- fair value and price -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "low", "high", "current"),
    [
        ("- **Fair Value Range**: $190 - $230 (Current: $212.41)", 190.0, 230.0, 212.41),
        ("- **Fair Value Range**: $1,095 - $1,180 (Current: $1,218.31)", 1095.0, 1180.0, 1218.31),
        ("**Fair Value Range**: $190–$230", 190.0, 230.0, None),
        ("**Fair Value Range**: 190 to 230 (Current Price: 200)", 190.0, 230.0, 200.0),
        ("- **Fair Value Range**: A$228 - A$255 (Current: A$214.90)", 228.0, 255.0, 214.9),
        ("- **Fair Value**: $12.5 - $14 | Confidence: 0.8/1.0", 12.5, 14.0, None),
        ("Fair Value Range: $2,345,678 - $3,000,000", 2345678.0, 3000000.0, None),
    ],
)
def test_fair_value_range(line: str, low: float, high: float, current: float | None) -> None:
    facts = parse_fundamental(f"# T\n{line}\n")
    assert (facts.fair_value_low, facts.fair_value_high) == (low, high)
    assert facts.current_price == current
    assert facts.warnings == ()


@pytest.mark.parametrize(
    "line",
    [
        "- **Fair Value Range**: under review",
        "- **Fair Value Range**: $200",
        "- **Fair Value Range**: $230 - $190",  # reversed: not silently swapped
        "- **Fair Value Range**: $1,09 - $1,180",  # not a thousands separator
    ],
)
def test_unparseable_fair_value_is_none_with_warning(line: str) -> None:
    facts = parse_fundamental(f"# T\n{line}\n")
    assert facts.fair_value_low is None and facts.fair_value_high is None
    assert len(facts.warnings) == 1 and "fair value" in facts.warnings[0]
    assert "line 2" in facts.warnings[0]


def test_valuation_table_is_not_a_fair_value() -> None:
    text = "| Method | Fair Value | Weight |\n|---|---|---|\n| DCF | $205 - $210 | 40% |\n"
    facts = parse_fundamental(text)
    assert facts.fair_value_low is None and facts.warnings == ()


def test_current_price_label() -> None:
    facts = parse_fundamental("- **Current Price**: $1,118.20\n")
    assert facts.current_price == 1118.2


def test_current_in_range_wins_over_later_label() -> None:
    text = "- **Fair Value Range**: $1 - $2 (Current: $1.50)\n- **Current Price**: $9\n"
    assert parse_fundamental(text).current_price == 1.5


def test_unparseable_current_price_warns() -> None:
    facts = parse_fundamental("**Current Price**: see appendix\n")
    assert facts.current_price is None
    assert len(facts.warnings) == 1


# --- sector ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- **Primary Sector**: Technology | **Industry**: Software", "technology"),
        (
            "- **Primary Sector**: Communication Services | **Industry**: Entertainment",
            "communication_services",
        ),
        ("**Sector**: Consumer Defensive", "consumer_staples"),
        ("---\nsector: Financial Services\n---\n# T\n", "financials"),
        ("---\nsector: 'health care'\n---\n# T\n", "healthcare"),
        ("- **Sector Ranking**: Top Quartile\n- **Sector Context**: 0.92/1.0", None),
        ("Technology sector moderately sensitive to rates", None),
    ],
)
def test_sector(text: str, expected: str | None) -> None:
    assert parse_fundamental(text).sector == expected


def test_unknown_sector_is_none_with_warning() -> None:
    facts = parse_fundamental("- **Primary Sector**: Widgets & Gadgets\n")
    assert facts.sector is None
    assert len(facts.warnings) == 1 and "Widgets & Gadgets" in facts.warnings[0]


def test_front_matter_sector_wins_over_disagreeing_body_with_warning() -> None:
    text = "---\nsector: Energy\n---\n- **Primary Sector**: Utilities\n"
    facts = parse_fundamental(text)
    assert facts.sector == "energy"
    assert len(facts.warnings) == 1 and "disagrees" in facts.warnings[0]


def test_unknown_front_matter_sector_falls_back_to_body() -> None:
    text = "---\nsector: Stuff\n---\n- **Primary Sector**: Utilities\n"
    facts = parse_fundamental(text)
    assert facts.sector == "utilities"
    assert len(facts.warnings) == 1


# --- front matter ---------------------------------------------------------------------------------


def test_split_front_matter_reports_body_line_numbers() -> None:
    text = "---\ntitle: x\nsector: Energy\n---\n# Body\n### Recommendation: Maybe\n"
    pairs, body, first_line = split_front_matter(text)
    assert pairs == {"title": "x", "sector": "Energy"}
    assert body.startswith("# Body")
    assert first_line == 5
    assert "line 6" in parse_fundamental(text).warnings[0]


def test_unclosed_front_matter_is_body() -> None:
    pairs, body, first_line = split_front_matter("---\nsector: Energy\n# no end\n")
    assert pairs == {} and first_line == 1 and body.startswith("---")


def test_horizontal_rule_is_not_front_matter() -> None:
    text = "# T\n---\nsector: Energy\n---\n"
    assert split_front_matter(text) == ({}, text, 1)


def test_crlf_line_endings() -> None:
    text = "---\r\nsector: Energy\r\n---\r\n### Recommendation: SELL | Conviction: 7/10\r\n"
    text += "- **Fair Value Range**: $10 - $12 (Current: $13)\r\n"
    facts = parse_fundamental(text)
    assert (facts.recommendation, facts.conviction, facts.sector) == ("SELL", 0.7, "energy")
    assert (facts.fair_value_low, facts.fair_value_high, facts.current_price) == (10, 12, 13)


# --- sector files ---------------------------------------------------------------------------------


def test_sector_file_confidence_scales() -> None:
    assert parse_sector_file("### Recommendation: HOLD | Confidence: 7.5/10.0").confidence == 0.75
    assert parse_sector_file("### Recommendation: HOLD").confidence is None


def test_sector_file_ignores_fundamental_labels() -> None:
    facts = parse_sector_file("### Recommendation: BUY\n- **Fair Value Range**: nonsense\n")
    assert facts.recommendation == "BUY" and facts.warnings == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("BUY", "BUY"),
        ("**strong buy**", "STRONG BUY"),
        ("Strong-Sell", "STRONG SELL"),
        ("HOLD with upside bias", "HOLD"),
        ("BUYBACK", None),
        ("BUY or HOLD", None),
        ("Not a BUY", None),
        ("BUY on weakness", None),
        ("", None),
    ],
)
def test_parse_rating(value: str, expected: str | None) -> None:
    assert parse_rating(value) == expected


def test_crlf_section_form() -> None:
    assert parse_fundamental("## Rating\r\n\r\nHOLD\r\n").recommendation == "HOLD"
    facts = parse_fundamental("### Recommendation: Maybe\r\n")
    assert facts.warnings == ("line 1: recommendation 'Maybe' is not a known rating",)
