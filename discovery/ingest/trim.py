"""A chunk's strings trimmed in one pass: labels and ids are stripped of surrounding whitespace
(blank: None), but in a real file almost none has any, so a few substring searches over all of
them joined find whether any string needs work, and only then is each one looked at."""

from __future__ import annotations

from typing import Any

import numpy as np

_SEP = "\x00"  # never in a value: the stream refuses a file with a NUL byte
ASCII_SPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
"""The ASCII characters `str.strip` removes (those for which `str.isspace` holds)."""
_EDGE = np.zeros(256, dtype=bool)  # a byte no string may start or end with, NUL included
_EDGE[[0, *map(ord, ASCII_SPACE)]] = True


def joined_plain(joined: str, count: int, longest: int | None = None) -> bool:
    """The NUL-joined text holds `count` strings, none empty, none with whitespace at an end and
    none longer than `longest`: the bytes next to each NUL, and the two ends, looked up at once.
    Text that is not all ASCII is never called plain: its other whitespace is left to
    `str.strip`."""
    if not count or not joined.isascii():
        return False
    padded = np.frombuffer(b"\x00" + joined.encode("ascii") + b"\x00", dtype=np.uint8)
    cuts = np.flatnonzero(padded == 0)
    if len(cuts) != count + 1:
        return False
    if longest is not None and (np.diff(cuts) - 1).max() > longest:
        return False
    return not (_EDGE[padded[cuts[:-1] + 1]].any() or _EDGE[padded[cuts[1:] - 1]].any())


def trimmed(strings: list[str], longest: int | None = None) -> list[str | None]:
    """Each string stripped; blank, or longer than `longest` once stripped: None."""
    if joined_plain(_SEP.join(strings), len(strings), longest):
        return list(strings)
    out: list[str | None] = []
    for s in strings:
        text = s.strip()
        out.append(text if text and (longest is None or len(text) <= longest) else None)
    return out


def join_plain(strings: list[Any], longest: int | None = None) -> str | None:
    """The strings NUL-joined when none needs trimming (nor is too long), else None (also when
    one is not a string)."""
    try:
        joined = _SEP.join(strings)
    except TypeError:
        return None
    return joined if joined_plain(joined, len(strings), longest) else None
