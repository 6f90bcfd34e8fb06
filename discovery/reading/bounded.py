"""JSON that fits a character budget: what an assistant's context (or a terminal) can take.

A value larger than the budget is cut at entry boundaries, never mid-value, and the cut is
said in place: a dict gains a `"…"` key and a list a last string element naming how many
entries were left out and how to get them. Nothing is rounded, merged or made up.
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_LIMIT = 6000
OMITTED_KEY = "…"


def dumps(value: Any, *, indent: int | None = None) -> str:
    if indent is None:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def _note(left: int, total: int, hint: str) -> str:
    return f"{left} of {total} entries not shown{'; ' + hint if hint else ''}"


def _shrink(value: Any, budget: int, hint: str) -> Any:
    """Greedy: keep whole entries in order while the compact form stays within `budget`; an
    entry that alone is too large is itself shrunk into the room left."""
    if len(dumps(value)) <= budget:
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        used = 2
        items = list(value.items())
        for i, (key, item) in enumerate(items):
            room = budget - used - len(dumps(key)) - 2 - 90  # 90: the omission note
            size = len(dumps(item))
            if size > room:
                if room > 200 and not out:
                    out[key] = _shrink(item, room, hint)
                    i += 1
                out[OMITTED_KEY] = _note(len(items) - i, len(items), hint)
                return out
            out[key] = item
            used += len(dumps(key)) + size + 2
        return out
    if isinstance(value, list):
        kept: list[Any] = []
        used = 2
        for i, item in enumerate(value):
            size = len(dumps(item))
            room = budget - used - 1 - 90
            if size > room:
                if room > 200 and not kept:
                    kept.append(_shrink(item, room, hint))
                    i += 1
                kept.append(_note(len(value) - i, len(value), hint))
                return kept
            kept.append(item)
            used += size + 1
        return kept
    if isinstance(value, str):
        return value[: max(0, budget - 40)] + f"… ({len(value)} characters)"
    return value


def bound(
    value: Any, limit: int = DEFAULT_LIMIT, *, indent: int | None = None, hint: str = ""
) -> tuple[str, bool]:
    """(text of `value` within `limit` characters, whether anything was left out)."""
    text = dumps(value, indent=indent)
    if len(text) <= limit:
        return text, False
    budget = limit
    for _ in range(8):  # indentation costs more than the compact measure: tighten until it fits
        text = dumps(_shrink(value, budget, hint), indent=indent)
        if len(text) <= limit:
            return text, True
        budget = int(budget * min(0.9, limit / len(text)))
    return dumps(_note(0, 0, hint))[:limit], True
