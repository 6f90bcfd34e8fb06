"""The cache report as a page (pure: the `cache report` JSON in, HTML out)."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from cache.report import human_bytes
from discovery.view.page import _trend, document, fmt, note, pct, section, table


def cache_page(report: Mapping[str, Any]) -> str:
    totals = report.get("totals") or {}
    head = (
        "<h1>tradescout · cache report</h1>"
        f'<p class="meta">{escape(str(report.get("cache_root")))} · generated '
        f"{escape(str(report.get('generated_at')))}</p>"
        '<div class="kpis">'
        + "".join(
            f'<div class="kpi">{escape(k)}<b>{escape(v)}</b></div>'
            for k, v in (
                ("entries", fmt(totals.get("entries"))),
                ("on disk", human_bytes(totals.get("disk_bytes") or 0)),
                ("hit ratio (lifetime)", pct(totals.get("hit_ratio_lifetime"))),
                ("reclaimable", human_bytes(totals.get("reclaimable_bytes") or 0)),
                ("integrity failures", fmt(totals.get("integrity_failures"))),
            )
        )
        + "</div>"
    )
    rows = []
    for name, ns in (report.get("namespaces") or {}).items():
        last = ns.get("last_run") or {}
        rows.append(
            [
                name,
                fmt(ns.get("entries")),
                human_bytes(ns.get("disk_bytes") or 0),
                fmt(ns.get("fresh")),
                fmt(ns.get("expired")),
                fmt(ns.get("never_read")),
                pct(ns.get("hit_ratio_lifetime")),
                pct(last.get("hit_ratio")),
                fmt(ns.get("integrity_failures")),
                human_bytes((ns.get("reclaimable") or {}).get("bytes") or 0),
            ]
        )
    spaces = (
        table(
            [
                "namespace",
                "entries",
                "on disk",
                "fresh",
                "expired",
                "never read",
                "hit ratio",
                "last run",
                "corrupt",
                "reclaimable",
            ],
            rows,
            set(range(1, 10)),
        )
        if rows
        else note("The cache is empty.")
    )
    advice = (
        "<ul>"
        + "".join(f"<li>{escape(str(r))}</li>" for r in report.get("recommendations") or [])
        + "</ul>"
    )
    strays = report.get("strays") or []
    stray_part = (
        table(
            ["path", "kind", "size", "why"],
            [
                [s.get("path"), s.get("kind"), human_bytes(s.get("bytes") or 0), s.get("why")]
                for s in strays
            ],
        )
        if strays
        else note("No strays.")
    )
    return document(
        "tradescout · cache report",
        [
            head,
            section("Namespaces", spaces, ident="namespaces"),
            section("Recommendations", advice, ident="advice"),
            section("Strays", stray_part, ident="strays"),
            _trend(report.get("trend")),
        ],
    )
