"""Key derivation: one function, the same key from every caller, no secrets anywhere."""

from __future__ import annotations

import pytest

from cache.keys import REDACTED, canonical_params, derive_key, is_secret_name, redact
from services.spec import ServiceRequest


def test_param_order_does_not_matter() -> None:
    a = derive_key("fmp", "profile", {"symbol": "AAPL", "limit": 5, "period": "annual"})
    b = derive_key("fmp", "profile", {"period": "annual", "limit": 5, "symbol": "AAPL"})
    assert a == b


def test_names_service_and_dataset_are_case_insensitive() -> None:
    a = derive_key("FMP", "Profile", {"Symbol": "AAPL"})
    b = derive_key("fmp", "profile", {"symbol": "AAPL"})
    assert a == b == "fmp:profile:symbol=AAPL"


def test_values_keep_their_case_and_are_stripped() -> None:
    assert derive_key("fred", "series", {"series_id": " DGS10 "}) == derive_key(
        "fred", "series", {"series_id": "DGS10"}
    )
    assert derive_key("fred", "series", {"series_id": "dgs10"}) != derive_key(
        "fred", "series", {"series_id": "DGS10"}
    )


def test_value_types_normalize_to_one_form() -> None:
    base = derive_key("yahoo_finance", "chart", {"period1": 1700000000, "include": True})
    assert base == derive_key("yahoo_finance", "chart", {"period1": "1700000000", "include": True})
    assert base == derive_key("yahoo_finance", "chart", {"period1": 1700000000.0, "include": True})
    assert derive_key("x", "d", {"flag": True}) == "x:d:flag=true"


def test_list_values_are_sorted() -> None:
    a = derive_key("coingecko", "price", {"ids": ["ethereum", "bitcoin"]})
    b = derive_key("coingecko", "price", {"ids": ("bitcoin", "ethereum")})
    assert a == b
    assert "ids=bitcoin,ethereum" in a


def test_mapping_values_are_canonical() -> None:
    a = derive_key("x", "d", {"filter": {"b": 2, "a": 1}})
    b = derive_key("x", "d", {"filter": {"a": 1, "b": 2}})
    assert a == b


def test_empty_and_none_values_are_dropped() -> None:
    assert derive_key("fred", "series", {"series_id": "UNRATE", "observation_start": None}) == (
        derive_key("fred", "series", {"series_id": "UNRATE", "observation_start": ""})
    )
    assert derive_key("fred", "series", {"series_id": "UNRATE", "observation_start": ""}) == (
        derive_key("fred", "series", {"series_id": "UNRATE"})
    )


@pytest.mark.parametrize(
    "name", ["apikey", "apiKey", "api_key", "API-KEY", "token", "X-Auth-Token", "fmp_apikey"]
)
def test_secrets_are_stripped_from_keys(name: str) -> None:
    secret = "s3cr3t-value-123"
    key = derive_key("fmp", "profile", {"symbol": "AAPL", name: secret})
    assert secret not in key
    assert key == derive_key("fmp", "profile", {"symbol": "AAPL"})


def test_extra_secrets_are_stripped() -> None:
    key = derive_key("x", "d", {"symbol": "A", "sig": "abcdef"}, extra_secrets=["SIG"])
    assert "abcdef" not in key
    assert key == derive_key("x", "d", {"symbol": "A"})


def test_same_key_from_every_caller() -> None:
    """The request builder, the planner and the report all land on one key for one request."""
    request = ServiceRequest(
        service="fmp", dataset="profile", path="/stable/profile", params={"symbol": "AAPL"}
    )
    from_request = request.cache_key()
    from_planner = derive_key("fmp", "profile", {"symbol": "AAPL", "_path": "/stable/profile"})
    with_secret = derive_key(
        "FMP", "PROFILE", {"apikey": "k", "_PATH": "/stable/profile", "SYMBOL": "AAPL "}
    )
    assert from_request == from_planner == with_secret


def test_sandbox_keys_are_distinct_from_live() -> None:
    live = derive_key("fmp", "profile", {"symbol": "AAPL"})
    sandbox = derive_key("fmp", "profile", {"symbol": "AAPL"}, upstream="sandbox")
    assert live != sandbox
    assert sandbox == f"sandbox|{live}"
    request = ServiceRequest(service="fmp", dataset="profile", path="/p", params={"symbol": "A"})
    assert request.cache_key("sandbox") != request.cache_key()


def test_long_params_are_hashed_stably() -> None:
    ids = [f"coin-{i:04d}" for i in range(100)]
    a = derive_key("coingecko", "price", {"ids": ids})
    b = derive_key("coingecko", "price", {"ids": list(reversed(ids))})
    assert a == b
    assert a.startswith("coingecko:price:sha256=")
    assert len(a) < 120
    assert a != derive_key("coingecko", "price", {"ids": ids[:-1]})


def test_distinct_requests_get_distinct_keys() -> None:
    keys = {
        derive_key("fmp", "profile", {"symbol": "AAPL"}),
        derive_key("fmp", "profile", {"symbol": "MSFT"}),
        derive_key("fmp", "quote", {"symbol": "AAPL"}),
        derive_key("alpha_vantage", "profile", {"symbol": "AAPL"}),
        derive_key("fmp", "profile", {"symbol": "AAPL", "limit": 1}),
    }
    assert len(keys) == 5


def test_canonical_params_escape_separators() -> None:
    # A value containing '&' or '=' cannot forge another parameter.
    a = canonical_params({"q": "a&b=c"})
    b = canonical_params({"q": "a", "b": "c"})
    assert a != b


def test_redact_replaces_credentials_everywhere() -> None:
    request = {
        "url": "https://financialmodelingprep.com/stable/profile?symbol=AAPL&apikey=K123",
        "params": {"symbol": "AAPL", "apikey": "K123"},
        "headers": {"User-Agent": "Jane jane@example.com", "Accept": "application/json"},
        "api_key": "K123",
    }
    out = redact(request)
    assert "K123" not in repr(out)
    assert "jane@example.com" not in repr(out)
    assert out["api_key"] == REDACTED
    assert out["params"] == {"symbol": "AAPL", "apikey": REDACTED}
    assert out["headers"]["Accept"] == "application/json"
    assert "symbol=AAPL" in out["url"]
    assert request["api_key"] == "K123"  # a copy: the caller's mapping is untouched


def test_is_secret_name() -> None:
    assert is_secret_name(" Authorization ")
    assert is_secret_name("x-cg-demo-api-key")
    assert not is_secret_name("symbol")
    assert not is_secret_name("series_id")
