"""Each answer parsed once, while its payload is in hand.

The fetch engine holds a payload only for the moment between the cache (or the network) and
its result; the slots that payload can fill are registered here as they are planned, and the
engine hands every `ok` payload over (`take`), so each is decoded and parsed once per run and
assembly never reads the cache again. What is kept is the parsed record — a chart's closes as
two arrays, a profile, a list of filings — not the payload: memory grows with the tickers, not
with the bytes fetched. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from discovery.plan.needs import Need, Source
from discovery.plan.outcomes import Answer
from services.errors import ServiceError
from services.recordclass import record
from services.spec import FetchResult

PARSE_ERRORS = (ServiceError, ValueError, KeyError, TypeError, AttributeError, OverflowError)
"""What a parser raises for a payload it cannot read (the slot's gap is `bad_response`)."""


@record
class Kept:
    """A parsed record, or the error its parser raised (raised again where it is used)."""

    value: Any = None
    error: Exception | None = None

    def get(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class ParsedAnswers:
    """The parsed records of this run's answers, by (need id, cache key)."""

    def __init__(self) -> None:
        self._slots: dict[str, dict[str, Source]] = {}  # cache key → need id → source
        self._kept: dict[tuple[str, str], Kept] = {}

    def expect(self, needs: Iterable[Need]) -> None:
        """Register the slots each request can fill (a deferred need once it is concrete)."""
        for need in needs:
            for source in need.sources:
                self._slots.setdefault(source.key, {})[need.id] = source

    def take(self, key: str, payload: Any) -> None:
        """Parse an `ok` payload for every slot its request can fill."""
        for need_id, source in self._slots.get(key, {}).items():
            try:
                kept = Kept(source.parse(payload))
            except PARSE_ERRORS as exc:
                kept = Kept(error=exc)
            self._kept[(need_id, key)] = kept

    def parsed(self, answer: Answer, payload_of: Callable[[FetchResult], Any]) -> Any:
        """The answer's parsed record: as taken, else parsed from its payload read back with
        `payload_of` (`NoPayload` when that is gone). Raises what the parser raised."""
        kept = self._kept.get((answer.need.id, answer.source.key))
        return kept.get() if kept is not None else parse_answer(answer, payload_of)


def parse_answer(answer: Answer, payload_of: Callable[[FetchResult], Any]) -> Any:
    """The answer's record parsed from its payload as `payload_of` gives it (read back from
    the cache: `NoPayload` when it is gone)."""
    payload = payload_of(answer.result)
    if payload is None:
        raise NoPayload(answer.source.key)
    return answer.source.parse(payload)


class NoPayload(LookupError):
    """An answer fetched this run whose payload is no longer in the cache (nor taken)."""
