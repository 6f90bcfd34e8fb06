"""CoinGecko `/api/v3/simple/price?ids=a,b&vs_currencies=usd[&include_*=true]` and `/api/v3/global`.

Unknown ids are simply absent from the answer (as on the real API); each `include_*` flag adds its
field per currency (`usd_market_cap`, `usd_24h_vol`, `usd_24h_change`, `last_updated_at`). Prices
are the same walk as Yahoo's `{SYM}-USD`, so the two services agree.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from services.sandbox.reply import Call, Reply, json_reply
from services.sandbox.synthetic import last_bars, local_today, utc_midnight
from services.sandbox.universe import Coin, universe
from services.sandbox.upstreams.base import Upstream, flag, route

_FIAT_PER_USD = {
    "usd": 1.0,
    "eur": 0.92,
    "gbp": 0.79,
    "jpy": 151.3,
    "aud": 1.53,
    "cad": 1.38,
    "chf": 0.88,
    "cny": 7.21,
    "inr": 84.2,
}


def _usd_figures(coin: Coin, day: date) -> tuple[float, float, float]:
    """(price, 24h volume, 24h change %) in USD on `day` (UTC)."""
    sec = universe().securities[coin.pair]
    bars = last_bars(sec.walk, day, 2)
    close, before = bars.close[-1], bars.close[-2]
    return close, float(bars.volume[-1]), (close / before - 1.0) * 100.0


def _per_usd(currency: str, day: date) -> float | None:
    if currency in _FIAT_PER_USD:
        return _FIAT_PER_USD[currency]
    coins = {c.symbol: c for c in universe().coins.values()}
    if currency in coins:
        return 1.0 / _usd_figures(coins[currency], day)[0]
    return None


def _round(value: float) -> float:
    return float(f"{value:.8g}")


def simple_price(call: Call) -> Reply:
    currencies = [c.strip().lower() for c in call.params.get("vs_currencies", "").split(",")]
    currencies = [c for c in currencies if c]
    if not currencies:
        return json_reply({"error": "Missing parameter vs_currencies"}, 400)
    day = local_today(call.now, universe().securities["BTC-USD"].market)
    wanted = [i.strip().lower() for i in call.params.get("ids", "").split(",") if i.strip()]
    coins = universe().coins
    rates = {c: _per_usd(c, day) for c in currencies}
    answer: dict[str, dict[str, Any]] = {}
    for coin_id in wanted:
        coin = coins.get(coin_id)
        if coin is None or coin_id in answer:
            continue
        price, volume, change = _usd_figures(coin, day)
        row: dict[str, Any] = {}
        for cur, rate in rates.items():
            if rate is None:
                continue
            row[cur] = _round(price * rate)
            if flag(call.params.get("include_market_cap")):
                row[f"{cur}_market_cap"] = round(price * coin.supply * rate, 4)
            if flag(call.params.get("include_24hr_vol")):
                row[f"{cur}_24h_vol"] = round(volume * rate, 4)
            if flag(call.params.get("include_24hr_change")):
                row[f"{cur}_24h_change"] = round(change, 10)
        if flag(call.params.get("include_last_updated_at")):
            row["last_updated_at"] = utc_midnight(day)
        answer[coin_id] = row
    return json_reply(answer)


def global_market(call: Call) -> Reply:
    day = local_today(call.now, universe().securities["BTC-USD"].market)
    caps: dict[str, float] = {}
    volume = 0.0
    weighted_change = 0.0
    for coin in universe().coins.values():
        price, vol, change = _usd_figures(coin, day)
        caps[coin.symbol] = price * coin.supply
        volume += vol
        weighted_change += change * caps[coin.symbol]
    known = sum(caps.values())
    total_cap = known / 0.93  # the long tail of coins the sandbox does not list
    total_volume = volume / 0.9
    top = sorted(caps.items(), key=lambda kv: -kv[1])[:10]
    rates = {cur: _per_usd(cur, day) for cur in (*_FIAT_PER_USD, "btc", "eth")}
    body = {
        "data": {
            "active_cryptocurrencies": 17000 + day.toordinal() % 997,
            "upcoming_icos": 0,
            "ongoing_icos": 49,
            "ended_icos": 3376,
            "markets": 1300 + day.toordinal() % 113,
            "total_market_cap": {c: total_cap * r for c, r in rates.items() if r is not None},
            "total_volume": {c: total_volume * r for c, r in rates.items() if r is not None},
            "market_cap_percentage": {sym: cap / total_cap * 100.0 for sym, cap in top},
            "market_cap_change_percentage_24h_usd": weighted_change / known,
            "updated_at": utc_midnight(day),
        }
    }
    return json_reply(body)


def too_many_requests(retry_after: int) -> Reply:
    return json_reply(
        {
            "status": {
                "error_code": 429,
                "error_message": "You've exceeded the Rate Limit. The tradescout sandbox allows "
                "30 calls per minute, like the keyless public API.",
            }
        },
        429,
    )


UPSTREAM = Upstream(
    name="coingecko",
    routes=(
        route(r"/api/v3/simple/price", simple_price),
        route(r"/api/v3/global", global_market),
    ),
    too_many_requests=too_many_requests,
    no_route=json_reply({"error": "Incorrect path. Please check the API documentation."}, 404),
)
