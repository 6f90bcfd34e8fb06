"""CoinGecko: USD quotes for crypto tickers (BTC-USD → bitcoin) and the whole-market picture.

Two kinds of optional key, both in a header (never in the URL): a pro key
(`COINGECKO_PRO_API_KEY`) goes to pro-api.coingecko.com as `x-cg-pro-api-key`, a demo key
(`COINGECKO_API_KEY`) to the public host as `x-cg-demo-api-key`; a configured base URL is the
host for either. A 401 is a refused key (bad_credential). Quotes are batched:
one `simple/price` request answers every coin of a run. An answer without any of the asked ids
(`{}`) is a negative result.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from services._common import (
    as_float,
    as_int,
    from_unix,
    parsed_verdict,
    refusal_message,
)
from services.errors import BadCredential, BadResponse, ServiceError
from services.records import CoinQuote, CryptoMarket
from services.spec import Credential, DatasetSpec, Reply, ServiceRequest, ServiceSpec, Verdict

NAME = "coingecko"
PRO_HOST = "https://pro-api.coingecko.com"

# Base symbol → CoinGecko coin id, for the common "{BASE}-USD" tickers of trade exports.
COIN_IDS: dict[str, str] = {
    "BTC": "bitcoin",
    "ETH": "ethereum",
    "SOL": "solana",
    "XRP": "ripple",
    "ADA": "cardano",
    "DOGE": "dogecoin",
    "DOT": "polkadot",
    "AVAX": "avalanche-2",
    "LINK": "chainlink",
    "LTC": "litecoin",
    "BCH": "bitcoin-cash",
    "BNB": "binancecoin",
    "TRX": "tron",
    "XLM": "stellar",
    "ATOM": "cosmos",
    "UNI": "uniswap",
    "SHIB": "shiba-inu",
    "NEAR": "near",
    "ETC": "ethereum-classic",
    "XMR": "monero",
    "MATIC": "matic-network",
    "TON": "the-open-network",
    "SUI": "sui",
    "APT": "aptos",
    "USDT": "tether",
    "USDC": "usd-coin",
}


def coin_id(ticker: str) -> str | None:
    """The coin id of a `{BASE}-USD` ticker, or None (not a crypto pair we know)."""
    text = ticker.strip().upper()
    base, sep, quote = text.partition("-")
    if not sep or quote != "USD":
        return None
    return COIN_IDS.get(base)


def simple_price_request(ids: Sequence[str]) -> ServiceRequest:
    """One request for every coin (ids de-duplicated and sorted, so the cache key is stable)."""
    coins = tuple(sorted({i.strip().lower() for i in ids if i.strip()}))
    if not coins:
        raise ValueError("simple_price_request needs at least one coin id")
    return ServiceRequest(
        service=NAME,
        dataset="simple_price",
        path="/api/v3/simple/price",
        params={
            "ids": ",".join(coins),
            "vs_currencies": "usd",
            "include_market_cap": "true",
            "include_24hr_vol": "true",
            "include_24hr_change": "true",
            "include_last_updated_at": "true",
        },
        subjects=coins,
    )


def probe_request() -> ServiceRequest:
    """Bitcoin's price: one small answer that shows whether the key (if any) is accepted."""
    return simple_price_request(["bitcoin"])


def parse_simple_price(payload: Any) -> dict[str, CoinQuote]:
    if not isinstance(payload, dict):
        raise BadResponse(NAME, "simple/price payload is not an object")
    quotes = {}
    for coin, values in payload.items():
        if not isinstance(values, dict):
            continue
        quotes[str(coin)] = CoinQuote(
            coin_id=str(coin),
            usd=as_float(values.get("usd")),
            market_cap=as_float(values.get("usd_market_cap")),
            vol_24h=as_float(values.get("usd_24h_vol")),
            change_24h=as_float(values.get("usd_24h_change")),
            last_updated=from_unix(values.get("last_updated_at")),
        )
    return quotes


def global_request() -> ServiceRequest:
    return ServiceRequest(service=NAME, dataset="global", path="/api/v3/global")


def parse_global(payload: Any) -> CryptoMarket:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise BadResponse(NAME, "global payload has no data object")

    def usd(block: str) -> float | None:
        values = data.get(block)
        return as_float(values.get("usd")) if isinstance(values, dict) else None

    shares = data.get("market_cap_percentage")
    shares = shares if isinstance(shares, dict) else {}
    return CryptoMarket(
        active_cryptocurrencies=as_int(data.get("active_cryptocurrencies")),
        total_market_cap_usd=usd("total_market_cap"),
        total_volume_usd=usd("total_volume"),
        btc_dominance=as_float(shares.get("btc")),
        eth_dominance=as_float(shares.get("eth")),
        market_cap_change_24h_pct=as_float(data.get("market_cap_change_percentage_24h_usd")),
        updated_at=from_unix(data.get("updated_at")),
    )


def refusal(request: ServiceRequest, reply: Reply) -> ServiceError | None:
    if reply.status != 401:
        return None
    message = refusal_message(reply.body, reply.text, "error_message", "error", "message")
    return BadCredential(NAME, f"HTTP 401 for {request.path}: {message}", dataset=request.dataset)


def classify(request: ServiceRequest, status: int, body: Any) -> Verdict:
    if request.dataset == "simple_price":
        return parsed_verdict(request, status, body, parse_simple_price, empty="negative")
    return parsed_verdict(request, status, body, parse_global)


SPEC = ServiceSpec(
    name=NAME,
    default_base_urls={"default": "https://api.coingecko.com"},
    datasets={
        "simple_price": DatasetSpec("simple_price", ttl=timedelta(minutes=15)),
        "global": DatasetSpec("global", ttl=timedelta(minutes=15)),
    },
    rate_per_second=0.45,
    max_connections=2,
    timeout_seconds=10.0,
    credentials=(
        Credential("COINGECKO_PRO_API_KEY", "header", "x-cg-pro-api-key", host=PRO_HOST),
        Credential("COINGECKO_API_KEY", "header", "x-cg-demo-api-key"),
    ),
    credential_required=False,
    classify=classify,
    refusal=refusal,
    probe=probe_request,
)
