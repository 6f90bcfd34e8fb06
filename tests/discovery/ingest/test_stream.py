"""read_ahead: the next chunk parsed on a worker thread, errors and early stops in order."""

from __future__ import annotations

import threading
from collections.abc import Generator

import pytest

from discovery.ingest.stream import read_ahead


class Source:
    """A generator of numbers that records which thread made each and whether it was closed."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.threads: list[str] = []
        self.closed = False

    def items(self) -> Generator[int, None, None]:
        try:
            for i in range(self.count):
                if i == self.fail_at:
                    raise ValueError(f"item {i}")
                self.threads.append(threading.current_thread().name)
                yield i
        finally:
            self.closed = True


def test_items_in_order_the_first_in_the_caller_the_rest_ahead() -> None:
    source = Source(5)
    assert list(read_ahead(source.items())) == [0, 1, 2, 3, 4]
    assert source.threads[0] == threading.current_thread().name
    assert all(name.startswith("ingest-parse") for name in source.threads[1:])
    assert source.closed


def test_an_error_arrives_in_place_of_its_item() -> None:
    source = Source(5, fail_at=3)
    seen: list[int] = []
    with pytest.raises(ValueError, match="item 3"):
        for item in read_ahead(source.items()):
            seen.append(item)
    assert seen == [0, 1, 2]


def test_an_early_stop_waits_for_the_worker_and_closes_the_items() -> None:
    source = Source(100)
    ahead = read_ahead(source.items())
    assert [next(ahead), next(ahead)] == [0, 1]
    ahead.close()
    assert source.closed
    assert len(source.threads) == 3  # the one being made ahead was finished, no more
    assert not [t for t in threading.enumerate() if t.name.startswith("ingest-parse")]


def test_nothing_to_read() -> None:
    assert list(read_ahead(Source(0).items())) == []
