"""The closed-trades JSON-lines files in the history folder: a file whose inputs are the same
as an earlier run's is that file again (a hard link), not half a gigabyte encoded and written
anew.

Beside each file a small `.inputs` note records the digest of what its records were made of
(`discovery.report.closed.records_inputs`), its record count and its size. A run looks at the
latest few notes of its portfolio; a match whose file is still there, a plain file of the noted
size, is linked under the run's own name. Anything else — no match, a file gone or changed, a
file system without hard links — and the file is written as usual. Notes and files are pruned
with the history (same run-id names).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from cache.atomic import atomic_write_bytes

NOTE_SUFFIX = ".inputs"
LOOK_BACK = 10  # notes read at most: the latest runs are the ones that can match


def note_path(records: Path) -> Path:
    """`demo_<run>.closed_trades.jsonl` → `demo_<run>.closed_trades.inputs`."""
    return records.with_suffix(NOTE_SUFFIX)


def write_note(records: Path, inputs: str, count: int) -> None:
    """Record what `records` was made of (best effort: without a note the file is only not
    reused by a later run)."""
    with contextlib.suppress(OSError):
        size = records.stat().st_size
        body = {"inputs": inputs, "count": count, "bytes": size}
        atomic_write_bytes(note_path(records), json.dumps(body).encode("utf-8") + b"\n")


def _read_note(path: Path) -> dict[str, Any] | None:
    try:
        if path.is_symlink() or path.stat().st_size > 4096:
            return None
        body = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
        return None
    if not all(isinstance(body.get(k), int) and body[k] >= 0 for k in ("count", "bytes")):
        return None
    return body


def reuse(records: Path, portfolio: str, inputs: str) -> int | None:
    """Link the latest earlier file made of the same `inputs` to `records` (and note it);
    returns its record count, or None when there is none to reuse."""
    folder = records.parent
    try:
        notes = sorted(folder.glob(f"{portfolio}_*.closed_trades{NOTE_SUFFIX}"), reverse=True)
    except OSError:
        return None
    for note in notes[:LOOK_BACK]:
        body = _read_note(note)
        if body is None or body["inputs"] != inputs:
            continue
        earlier = note.with_suffix(".jsonl")
        try:
            if earlier.is_symlink() or not earlier.is_file():
                continue
            if earlier.stat().st_size != body["bytes"]:
                continue  # changed since it was noted: not the file the note describes
            os.link(earlier, records)
        except OSError:
            return None  # no hard links here (or the name is taken): write it anew
        write_note(records, inputs, body["count"])
        return int(body["count"])
    return None
