"""ParsedAnswers: each payload parsed once per slot it can fill, errors kept for the slot."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from discovery.plan.needs import Need, Source
from discovery.plan.outcomes import Answer
from discovery.plan.parsed import NoPayload, ParsedAnswers, parse_answer
from services.errors import BadResponse
from services.spec import FetchResult, ServiceRequest

REQUEST = ServiceRequest("coingecko", "simple_price", "/simple/price", {"ids": "bitcoin"})
T = datetime(2026, 12, 1, tzinfo=UTC)


def need(kind: str, parse: Any) -> Need:
    return Need(kind, "BTC-USD", "why", "coingecko", "simple_price", (Source(REQUEST, parse),))


def answer(n: Need) -> Answer:
    result = FetchResult(REQUEST, "ok", None, "cache", T, T)
    return Answer(n, n.sources[0], result)


def test_one_payload_is_parsed_once_for_each_slot_it_fills() -> None:
    calls: list[str] = []

    def prices(payload: Any) -> Any:
        calls.append("prices")
        return payload

    def coin(payload: Any) -> Any:
        calls.append("coin")
        return payload["bitcoin"]

    both = [need("crypto_prices", prices), need("profile", coin)]
    store = ParsedAnswers()
    store.expect(both)
    store.expect(both)  # registering again (a need planned twice) changes nothing
    store.take(REQUEST.cache_key(), {"bitcoin": {"usd": 1.0}})
    assert sorted(calls) == ["coin", "prices"]
    never = lambda _result: pytest.fail("read back although it was taken")  # noqa: E731
    assert store.parsed(answer(both[0]), never) == {"bitcoin": {"usd": 1.0}}
    assert store.parsed(answer(both[1]), never) == {"usd": 1.0}
    assert sorted(calls) == ["coin", "prices"]  # taken values are not parsed again


def test_a_parse_error_is_raised_where_the_slot_is_filled() -> None:
    def refuse(_payload: Any) -> Any:
        raise BadResponse("coingecko", "no prices")

    n = need("crypto_prices", refuse)
    store = ParsedAnswers()
    store.expect([n])
    store.take(REQUEST.cache_key(), {})  # the engine's hand-over never raises
    with pytest.raises(BadResponse):
        store.parsed(answer(n), lambda _r: {})


def test_an_answer_not_taken_is_read_back_and_a_missing_payload_says_so() -> None:
    n = need("crypto_prices", lambda payload: payload["x"])
    store = ParsedAnswers()
    store.take(REQUEST.cache_key(), {"x": 1})  # not expected: nothing kept
    assert store.parsed(answer(n), lambda _r: {"x": 2}) == 2
    with pytest.raises(NoPayload):
        parse_answer(answer(n), lambda _r: None)
