"""A chunk's strings trimmed in one pass: labels and ids are stripped of surrounding whitespace
(blank: None), but in a real file almost none has any, so one regex over all of them joined
finds whether any string needs work, and only then is each one looked at."""

from __future__ import annotations

import re

_SEP = "\x00"  # never in a value: the stream refuses a file with a NUL byte
_EDGE = re.compile(r"(?:^|\x00)(?:\s|\x00|$)|\s(?:\x00|$)")
"""A string that starts or ends with whitespace, or is empty (`\\s` is `str.strip`'s set)."""


def trimmed(strings: list[str], longest: int | None = None) -> list[str | None]:
    """Each string stripped; blank, or longer than `longest` once stripped: None."""
    joined = _SEP.join(strings)
    if (
        joined.count(_SEP) == max(len(strings) - 1, 0)
        and not _EDGE.search(joined)
        and (longest is None or max(map(len, strings), default=0) <= longest)
    ):
        return list(strings)
    out: list[str | None] = []
    for s in strings:
        text = s.strip()
        out.append(text if text and (longest is None or len(text) <= longest) else None)
    return out


def split_joined(parts: list[bytes]) -> list[str] | None:
    """UTF-8 byte strings as str, decoded in one call (None if one holds a NUL: not a value)."""
    text = _SEP.encode().join(parts).decode("utf-8")
    found = text.split(_SEP) if parts else []
    return found if len(found) == len(parts) else None
