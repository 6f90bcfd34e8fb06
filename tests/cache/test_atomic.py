"""Atomic writes, and the drop-behind stream a half-gigabyte closed-trades file is written with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cache import atomic
from cache.atomic import DROP_BEHIND_BYTES, atomic_streamer, atomic_writer

MB = 1 << 20


class Advice:
    """Records the `posix_fadvise` calls instead of making them."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[int, int, int]] = []
        self.fail = fail

    def __call__(self, fd: int, offset: int, length: int, advice: int) -> None:
        assert os.fstat(fd).st_size >= offset + length  # flushed before advised
        self.calls.append((offset, length, advice))
        if self.fail:
            raise OSError(22, "Invalid argument")


def stream(path: Path, blocks: list[bytes]) -> None:
    with atomic_streamer(path) as handle:
        for block in blocks:
            assert handle.write(block) == len(block)


def test_streamed_bytes_are_written_whole_and_advised_every_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    advice = Advice()
    monkeypatch.setattr(atomic, "_ADVISE", advice)
    blocks = [bytes([i]) * (3 * MB) for i in range(40)]  # 120 MB in 3 MB blocks
    target = tmp_path / "out" / "closed.jsonl"
    stream(target, blocks)
    assert target.read_bytes() == b"".join(blocks)
    assert [p.name for p in target.parent.iterdir()] == ["closed.jsonl"]  # no temp left
    ends = [offset + length for offset, length, _ in advice.calls]
    assert len(advice.calls) == 120 * MB // (18 * MB)  # 6 blocks (18 MB) per window
    assert ends == [18 * MB * k for k in range(1, len(ends) + 1)]  # each up to what is written
    assert all(a == os.POSIX_FADV_DONTNEED for _, _, a in advice.calls)
    # Each hint reaches back over the last windows again (pages still being written out then).
    for (offset, _, _), previous_end in zip(advice.calls[1:], ends, strict=False):
        assert offset == max(0, previous_end - 4 * DROP_BEHIND_BYTES)


def test_a_small_stream_is_not_advised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    advice = Advice()
    monkeypatch.setattr(atomic, "_ADVISE", advice)
    stream(tmp_path / "small", [b"x" * (DROP_BEHIND_BYTES - 1)])
    assert advice.calls == []
    assert (tmp_path / "small").stat().st_size == DROP_BEHIND_BYTES - 1


def test_refused_advice_leaves_the_write_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    advice = Advice(fail=True)
    monkeypatch.setattr(atomic, "_ADVISE", advice)
    blocks = [os.urandom(MB) for _ in range(40)]
    stream(tmp_path / "f", blocks)
    assert advice.calls  # asked, refused, carried on
    assert (tmp_path / "f").read_bytes() == b"".join(blocks)


def test_without_fadvise_the_stream_is_a_plain_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic, "_ADVISE", None)  # macOS, Windows
    blocks = [b"a" * (10 * MB), b"b" * (10 * MB)]
    stream(tmp_path / "f", blocks)
    assert (tmp_path / "f").read_bytes() == b"".join(blocks)


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")
def test_the_real_advice_is_accepted_and_changes_no_byte(tmp_path: Path) -> None:
    blocks = [os.urandom(4 * MB) for _ in range(12)]
    stream(tmp_path / "real", blocks)
    assert (tmp_path / "real").read_bytes() == b"".join(blocks)


@pytest.mark.parametrize("writer", [atomic_writer, atomic_streamer])
def test_a_failed_stream_leaves_neither_file_nor_temp(tmp_path: Path, writer: Any) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), writer(target) as handle:
        handle.write(b"new" * MB)
        raise RuntimeError("killed halfway")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
