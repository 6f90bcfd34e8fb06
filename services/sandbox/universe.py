"""The symbols the sandbox knows: the demo portfolio, ~3,000 generated US equities, ETFs, indices
and ~20 crypto coins — each with the identity data every simulated service agrees on.

Names of the demo companies are public facts; everything else (CIKs, generated companies, prices)
is invented. Symbols beginning with `ZZ` are never part of the universe, so tests can rely on
them being unknown to every service.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Literal

from services.sandbox.synthetic import ASX, CRYPTO, FX, US, Market, Walk, WalkShape, unit_for

Kind = Literal["equity", "etf", "index", "crypto", "fx"]

GENERATED_EQUITIES = 3000
UNKNOWN_PREFIX = "ZZ"


@dataclass(frozen=True)
class Security:
    """One tradable symbol as every service sees it."""

    symbol: str
    name: str
    kind: Kind
    sector: str
    industry: str
    cik: int | None  # SEC filers only (US equities and US ETFs)
    exchange: str  # short exchange code, e.g. "NASDAQ"
    exchange_full: str
    yahoo_exchange: str  # Yahoo's exchangeName, e.g. "NMS"
    country: str
    currency: str
    market: Market
    base_price: float  # the level the walk hovers around in the anchor year
    shape: WalkShape
    base_volume: float

    @property
    def is_us_equity(self) -> bool:
        return self.kind == "equity" and self.country == "US"

    @property
    def price_hint(self) -> int:
        """Yahoo's `priceHint`: decimals worth showing at this price level."""
        return 2 if self.base_price >= 1 else 4 if self.base_price >= 0.01 else 8

    @cached_property
    def walk(self) -> Walk:
        return Walk(
            self.symbol,
            self.market,
            self.shape,
            self.base_price,
            self.base_volume,
            self.price_hint + 2,
        )


@dataclass(frozen=True)
class Coin:
    """A CoinGecko coin; Yahoo knows it as `{symbol}-USD`."""

    id: str
    symbol: str
    name: str
    base_price: float
    supply: float  # circulating supply, for market cap

    @property
    def pair(self) -> str:
        return f"{self.symbol.upper()}-USD"


_EXCHANGES = {
    "NASDAQ": ("NASDAQ Global Select", "NMS"),
    "NYSE": ("New York Stock Exchange", "NYQ"),
    "AMEX": ("NYSE American", "ASE"),
    "ASX": ("Australian Securities Exchange", "ASX"),
    "ARCA": ("NYSE Arca", "PCX"),
}

# symbol, name, sector, industry, exchange, base price
_DEMO: tuple[tuple[str, str, str, str, str, float], ...] = (
    ("AAPL", "Apple Inc.", "Technology", "Consumer Electronics", "NASDAQ", 232.0),
    ("MSFT", "Microsoft Corporation", "Technology", "Software - Infrastructure", "NASDAQ", 425.0),
    ("NVDA", "NVIDIA Corporation", "Technology", "Semiconductors", "NASDAQ", 142.0),
    ("AMZN", "Amazon.com, Inc.", "Consumer Cyclical", "Specialty Retail", "NASDAQ", 205.0),
    (
        "GOOGL",
        "Alphabet Inc.",
        "Communication Services",
        "Internet Content & Information",
        "NASDAQ",
        178.0,
    ),
    (
        "META",
        "Meta Platforms, Inc.",
        "Communication Services",
        "Internet Content & Information",
        "NASDAQ",
        585.0,
    ),
    ("TSLA", "Tesla, Inc.", "Consumer Cyclical", "Auto - Manufacturers", "NASDAQ", 310.0),
    ("NFLX", "Netflix, Inc.", "Communication Services", "Entertainment", "NASDAQ", 118.0),
    ("AMD", "Advanced Micro Devices, Inc.", "Technology", "Semiconductors", "NASDAQ", 152.0),
    (
        "CRWD",
        "CrowdStrike Holdings, Inc.",
        "Technology",
        "Software - Infrastructure",
        "NASDAQ",
        385.0,
    ),
    (
        "COST",
        "Costco Wholesale Corporation",
        "Consumer Defensive",
        "Discount Stores",
        "NASDAQ",
        910.0,
    ),
    ("JPM", "JPMorgan Chase & Co.", "Financial Services", "Banks - Diversified", "NYSE", 245.0),
    (
        "MA",
        "Mastercard Incorporated",
        "Financial Services",
        "Financial - Credit Services",
        "NYSE",
        525.0,
    ),
    ("V", "Visa Inc.", "Financial Services", "Financial - Credit Services", "NYSE", 325.0),
    ("XOM", "Exxon Mobil Corporation", "Energy", "Oil & Gas Integrated", "NYSE", 116.0),
    ("LLY", "Eli Lilly and Company", "Healthcare", "Drug Manufacturers - General", "NYSE", 805.0),
    (
        "UNH",
        "UnitedHealth Group Incorporated",
        "Healthcare",
        "Medical - Healthcare Plans",
        "NYSE",
        505.0,
    ),
    ("HD", "The Home Depot, Inc.", "Consumer Cyclical", "Home Improvement", "NYSE", 395.0),
    (
        "PG",
        "The Procter & Gamble Company",
        "Consumer Defensive",
        "Household & Personal Products",
        "NYSE",
        166.0,
    ),
    (
        "KO",
        "The Coca-Cola Company",
        "Consumer Defensive",
        "Beverages - Non-Alcoholic",
        "NYSE",
        66.0,
    ),
    ("PEP", "PepsiCo, Inc.", "Consumer Defensive", "Beverages - Non-Alcoholic", "NASDAQ", 152.0),
    ("CAT", "Caterpillar Inc.", "Industrials", "Agricultural - Machinery", "NYSE", 382.0),
    ("GE", "GE Aerospace", "Industrials", "Aerospace & Defense", "NYSE", 192.0),
    ("RTX", "RTX Corporation", "Industrials", "Aerospace & Defense", "NYSE", 127.0),
    ("LMT", "Lockheed Martin Corporation", "Industrials", "Aerospace & Defense", "NYSE", 482.0),
    ("NEE", "NextEra Energy, Inc.", "Utilities", "Regulated Electric", "NYSE", 76.0),
    ("AMT", "American Tower Corporation", "Real Estate", "REIT - Specialty", "NYSE", 202.0),
    ("LIN", "Linde plc", "Basic Materials", "Chemicals - Specialty", "NASDAQ", 452.0),
    ("DIS", "The Walt Disney Company", "Communication Services", "Entertainment", "NYSE", 112.0),
    (
        "BRK-B",
        "Berkshire Hathaway Inc.",
        "Financial Services",
        "Insurance - Diversified",
        "NYSE",
        472.0,
    ),
)

_ETFS: tuple[tuple[str, str, float], ...] = (
    ("SPY", "SPDR S&P 500 ETF Trust", 590.0),
    ("QQQ", "Invesco QQQ Trust, Series 1", 510.0),
    ("IWM", "iShares Russell 2000 ETF", 225.0),
    ("DIA", "SPDR Dow Jones Industrial Average ETF Trust", 430.0),
    ("TLT", "iShares 20+ Year Treasury Bond ETF", 92.0),
    ("GLD", "SPDR Gold Shares", 245.0),
)

_INDICES: tuple[tuple[str, str, str, float, float], ...] = (
    ("^VIX", "CBOE Volatility Index", "CBO", 17.0, 0.055),
    ("^GSPC", "S&P 500", "SNP", 5900.0, 0.010),
    ("^IXIC", "NASDAQ Composite", "NIM", 19000.0, 0.013),
    ("^DJI", "Dow Jones Industrial Average", "DJI", 43000.0, 0.009),
    ("^RUT", "Russell 2000", "WCB", 2250.0, 0.014),
    ("^TNX", "CBOE Interest Rate 10 Year T No", "CGI", 4.3, 0.02),
)

# Currencies of the simulated FX market, with roughly what one unit was worth in USD in the
# anchor year; every ordered pair is a Yahoo symbol `{FROM}{TO}=X` (`AUDUSD=X`).
_CURRENCIES: tuple[tuple[str, float], ...] = (
    ("USD", 1.0),
    ("AUD", 0.65),
    ("CAD", 0.72),
    ("CHF", 1.12),
    ("EUR", 1.08),
    ("GBP", 1.27),
    ("HKD", 0.128),
    ("ILS", 0.27),
    ("JPY", 0.0066),
    ("ZAR", 0.054),
)

_COINS: tuple[tuple[str, str, str, float, float], ...] = (
    ("bitcoin", "btc", "Bitcoin", 96000.0, 19.8e6),
    ("ethereum", "eth", "Ethereum", 3400.0, 120.4e6),
    ("tether", "usdt", "Tether", 1.0, 140e9),
    ("binancecoin", "bnb", "BNB", 640.0, 145e6),
    ("solana", "sol", "Solana", 190.0, 480e6),
    ("ripple", "xrp", "XRP", 2.3, 57e9),
    ("usd-coin", "usdc", "USDC", 1.0, 45e9),
    ("cardano", "ada", "Cardano", 0.85, 35e9),
    ("dogecoin", "doge", "Dogecoin", 0.32, 147e9),
    ("tron", "trx", "TRON", 0.24, 86e9),
    ("avalanche-2", "avax", "Avalanche", 36.0, 410e6),
    ("chainlink", "link", "Chainlink", 19.0, 630e6),
    ("polkadot", "dot", "Polkadot", 6.8, 1.5e9),
    ("litecoin", "ltc", "Litecoin", 105.0, 75e6),
    ("bitcoin-cash", "bch", "Bitcoin Cash", 440.0, 19.8e6),
    ("stellar", "xlm", "Stellar", 0.40, 30e9),
    ("uniswap", "uni", "Uniswap", 12.5, 600e6),
    ("cosmos", "atom", "Cosmos Hub", 6.2, 390e6),
    ("near", "near", "NEAR Protocol", 5.1, 1.2e9),
    ("monero", "xmr", "Monero", 210.0, 18.4e6),
    ("shiba-inu", "shib", "Shiba Inu", 0.000021, 589e12),
    ("ethereum-classic", "etc", "Ethereum Classic", 26.0, 149e6),
    ("matic-network", "matic", "Polygon", 0.48, 9.3e9),
    ("the-open-network", "ton", "Toncoin", 5.4, 2.5e9),
    ("sui", "sui", "Sui", 3.6, 3.0e9),
    ("aptos", "apt", "Aptos", 9.2, 560e6),
)
STABLECOINS = frozenset({"tether", "usd-coin"})

_SECTORS: dict[str, tuple[str, ...]] = {
    "Technology": (
        "Software - Application",
        "Software - Infrastructure",
        "Semiconductors",
        "Communication Equipment",
        "Information Technology Services",
        "Computer Hardware",
    ),
    "Healthcare": (
        "Biotechnology",
        "Medical - Devices",
        "Drug Manufacturers - Specialty & Generic",
        "Medical - Diagnostics & Research",
        "Medical - Care Facilities",
    ),
    "Financial Services": (
        "Banks - Regional",
        "Asset Management",
        "Insurance - Property & Casualty",
        "Financial - Capital Markets",
        "Financial - Credit Services",
    ),
    "Consumer Cyclical": (
        "Specialty Retail",
        "Restaurants",
        "Auto - Parts",
        "Apparel - Retail",
        "Travel Lodging",
    ),
    "Consumer Defensive": (
        "Packaged Foods",
        "Grocery Stores",
        "Household & Personal Products",
        "Beverages - Non-Alcoholic",
    ),
    "Industrials": (
        "Industrial - Machinery",
        "Aerospace & Defense",
        "Engineering & Construction",
        "Trucking",
        "Staffing & Employment Services",
    ),
    "Energy": ("Oil & Gas Exploration & Production", "Oil & Gas Midstream", "Solar"),
    "Utilities": ("Regulated Electric", "Regulated Gas", "Renewable Utilities"),
    "Real Estate": ("REIT - Residential", "REIT - Industrial", "Real Estate - Services"),
    "Basic Materials": ("Chemicals - Specialty", "Steel", "Gold", "Construction Materials"),
    "Communication Services": (
        "Telecommunications Services",
        "Advertising Agencies",
        "Entertainment",
        "Internet Content & Information",
    ),
}
_SECTOR_WEIGHTS = (22, 16, 15, 11, 6, 12, 5, 3, 4, 3, 3)
_SUFFIXES = ("Inc.", "Corp.", "Holdings, Inc.", "Group, Inc.", "Co.", "Technologies, Inc.")
_SYLLABLES = [
    "al",
    "ar",
    "bel",
    "cor",
    "dan",
    "del",
    "en",
    "fal",
    "gar",
    "hal",
    "in",
    "kor",
    "lan",
    "len",
    "mar",
    "mer",
    "nor",
    "ol",
    "par",
    "qua",
    "ran",
    "sel",
    "tal",
    "tor",
    "ul",
    "val",
    "ver",
    "wen",
    "xan",
    "yor",
    "zen",
    "bri",
    "cal",
    "dro",
    "fen",
    "gla",
    "kin",
    "lum",
    "nex",
    "ori",
    "pra",
    "qui",
    "ros",
    "sta",
    "tri",
    "vex",
]


def _equity(
    symbol: str,
    name: str,
    sector: str,
    industry: str,
    exchange: str,
    price: float,
    cik: int | None,
    country: str = "US",
    currency: str = "USD",
    market: Market = US,
) -> Security:
    full, yahoo = _EXCHANGES[exchange]
    sigma = 0.012 + 0.018 * unit_for(symbol, "sigma")
    drift = 0.02 + 0.14 * unit_for(symbol, "drift")
    volume = 10 ** (5.3 + 2.2 * unit_for(symbol, "volume"))
    return Security(
        symbol=symbol,
        name=name,
        kind="equity",
        sector=sector,
        industry=industry,
        cik=cik,
        exchange=exchange,
        exchange_full=full,
        yahoo_exchange=yahoo,
        country=country,
        currency=currency,
        market=market,
        base_price=price,
        shape=WalkShape(sigma, drift, 0.18),
        base_volume=volume,
    )


def _generated_name(rng: random.Random) -> str:
    word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 2, 3)))).capitalize()
    return f"{word} {rng.choice(_SUFFIXES)}"


def _generated_ticker(name: str, rng: random.Random, taken: set[str]) -> str:
    letters = [c for c in name.upper() if c.isalpha()]
    for _ in range(50):
        size = rng.choice((3, 4, 4))
        head = letters[0]
        tail = "".join(rng.choice(letters[1:] + list(string.ascii_uppercase)) for _ in range(size))
        ticker = (head + tail)[:size]
        if ticker not in taken and not ticker.startswith(UNKNOWN_PREFIX):
            return ticker
    raise RuntimeError("could not generate a unique ticker")  # pragma: no cover


@dataclass(frozen=True)
class Universe:
    securities: dict[str, Security]  # by upper-case symbol (crypto pairs included)
    coins: dict[str, Coin]  # by CoinGecko id
    equities: tuple[str, ...]  # demo equities first, then generated ones
    ciks: dict[int, Security]  # SEC filers by CIK

    def security(self, symbol: str) -> Security | None:
        symbol = symbol.upper()
        if symbol.startswith(UNKNOWN_PREFIX):
            return None
        return self.securities.get(symbol)

    def by_cik(self, cik: int) -> Security | None:
        return self.ciks.get(cik)


@lru_cache(maxsize=1)
def universe() -> Universe:
    """The one universe (built once per process; fully determined by constants)."""
    rng = random.Random("tradescout-sandbox-universe-v1")
    cik_pool = iter(rng.sample(range(1_000_000, 2_000_000), 4 * GENERATED_EQUITIES))
    securities: dict[str, Security] = {}
    equities: list[str] = []
    for symbol, name, sector, industry, exchange, price in _DEMO:
        securities[symbol] = _equity(
            symbol, name, sector, industry, exchange, price, next(cik_pool)
        )
        equities.append(symbol)
    securities["MQG.AX"] = _equity(
        "MQG.AX",
        "Macquarie Group Limited",
        "Financial Services",
        "Financial - Capital Markets",
        "ASX",
        221.0,
        None,
        country="AU",
        currency="AUD",
        market=ASX,
    )
    equities.append("MQG.AX")
    for symbol, name, price in _ETFS:
        full, yahoo = _EXCHANGES["ARCA"]
        securities[symbol] = Security(
            symbol,
            name,
            "etf",
            "Financial Services",
            "Asset Management",
            next(cik_pool),
            "AMEX",
            full,
            "PCX" if symbol != "QQQ" else "NGM",
            "US",
            "USD",
            US,
            price,
            WalkShape(0.009, 0.07, 0.12),
            5e7,
        )
    for symbol, name, yahoo, price, sigma in _INDICES:
        drift = 0.0 if symbol in {"^VIX", "^TNX"} else 0.07
        securities[symbol] = Security(
            symbol,
            name,
            "index",
            "",
            "",
            None,
            "INDEX",
            name,
            yahoo,
            "US",
            "USD",
            US,
            price,
            WalkShape(sigma, drift, 0.25 if drift == 0.0 else 0.12),
            0.0 if symbol == "^VIX" else 3e9,
        )
    coins: dict[str, Coin] = {}
    for coin_id, sym, name, price, supply in _COINS:
        coin = Coin(coin_id, sym, name, price, supply)
        coins[coin_id] = coin
        stable = coin_id in STABLECOINS
        securities[coin.pair] = Security(
            coin.pair,
            f"{name} USD",
            "crypto",
            "",
            "",
            None,
            "CCC",
            "CCC",
            "CCC",
            "",
            "USD",
            CRYPTO,
            price,
            WalkShape(0.0004, 0.0, 0.001) if stable else WalkShape(0.035, 0.25, 0.35),
            price * supply * 0.04,
        )
    for base, base_usd in _CURRENCIES:
        for quote, quote_usd in _CURRENCIES:
            if base == quote:
                continue
            pair = f"{base}{quote}=X"
            rate = base_usd / quote_usd
            securities[pair] = Security(
                pair,
                f"{base}/{quote}",
                "fx",
                "",
                "",
                None,
                "CCY",
                "CCY",
                "CCY",
                "",
                quote,
                FX,
                rate,
                WalkShape(0.005, 0.0, 0.05),
                0.0,
            )
    sectors = list(_SECTORS)
    taken = set(securities)
    for _ in range(GENERATED_EQUITIES):
        name = _generated_name(rng)
        symbol = _generated_ticker(name, rng, taken)
        taken.add(symbol)
        sector = rng.choices(sectors, weights=_SECTOR_WEIGHTS)[0]
        industry = rng.choice(_SECTORS[sector])
        exchange = rng.choice(("NASDAQ", "NASDAQ", "NYSE", "NYSE", "AMEX"))
        price = round(10 ** rng.uniform(0.6, 2.7), 2)
        securities[symbol] = _equity(
            symbol, name, sector, industry, exchange, price, next(cik_pool)
        )
        equities.append(symbol)
    by_cik = {s.cik: s for s in securities.values() if s.cik is not None}
    return Universe(securities, coins, tuple(equities), by_cik)


def equity_symbols(*, us_only: bool = False) -> list[str]:
    """Every stock symbol the sandbox knows (demo tickers first): build test portfolios from these.

    All are known to Yahoo and FMP; the US ones (all but MQG.AX) also to Alpha Vantage and SEC.
    """
    u = universe()
    return [s for s in u.equities if not us_only or u.securities[s].is_us_equity]


def crypto_pairs() -> list[str]:
    """Yahoo symbols of the sandbox's coins (`BTC-USD`, …)."""
    return [c.pair for c in universe().coins.values()]


def coin_ids() -> list[str]:
    """CoinGecko ids of the sandbox's coins (`bitcoin`, …)."""
    return list(universe().coins)
