"""The three Binance venues: spot, USD-M futures and COIN-M futures. What differs between them is
data (REST paths, stream names and speeds, limits, the depth rule), kept here in one table.

Sources: Binance's API documentation for spot (api.binance.com, stream.binance.com:9443),
USD-M futures (fapi.binance.com, fstream.binance.com) and COIN-M futures (dapi.binance.com,
dstream.binance.com): "Diff. Book Depth Streams" for the speeds, "Order Book" for the REST
limits and their weights, "Websocket Market Streams" for streams per connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "ALIAS_CONTRACT_TYPES",
    "MARKETS",
    "STREAM_KINDS",
    "BinanceMarket",
    "market",
]

# Stream kinds a feed can subscribe per symbol. "trade" is spot's (futures have aggTrade only);
# markPrice and forceOrder exist on the futures venues only.
STREAM_KINDS: Final = ("depth", "trade", "aggTrade", "bookTicker", "markPrice", "forceOrder")

# Symbol aliases a quarterly contract can be configured by: <pair>_<contract type>, e.g.
# BTCUSD_CURRENT_QUARTER, resolved against exchangeInfo's pair and contractType at start-up.
ALIAS_CONTRACT_TYPES: Final = (
    "PERPETUAL",
    "CURRENT_QUARTER",
    "NEXT_QUARTER",
    "CURRENT_MONTH",
    "NEXT_MONTH",
)


@dataclass(frozen=True, slots=True)
class BinanceMarket:
    venue: str
    futures: bool
    depth_path: str
    exchange_info_path: str
    open_interest_path: str  # "" where the venue has none (spot)
    speeds: tuple[str, ...]  # depth stream speeds offered
    unsuffixed_speed: str  # the speed the plain "<symbol>@depth" stream has
    stream_kinds: tuple[str, ...]  # kinds the venue offers
    default_streams: tuple[str, ...]
    max_streams_per_connection: int
    depth_limits: tuple[int, ...]  # REST depth limits accepted (empty: any 5..5000)
    weight_per_minute: int  # REQUEST_WEIGHT per minute when exchangeInfo says nothing

    def depth_stream(self, symbol: str, speed: str) -> str:
        low = symbol.lower()
        return f"{low}@depth" if speed == self.unsuffixed_speed else f"{low}@depth@{speed}"

    def stream_name(self, symbol: str, kind: str, speed: str) -> str:
        if kind == "depth":
            return self.depth_stream(symbol, speed)
        if kind == "markPrice":
            return f"{symbol.lower()}@markPrice@1s"
        return f"{symbol.lower()}@{kind}"

    def depth_weight(self, limit: int) -> int:
        """The REST weight of one depth snapshot of ``limit`` levels."""
        if not self.futures:  # spot /api/v3/depth
            if limit <= 100:
                return 5
            if limit <= 500:
                return 25
            return 50 if limit <= 1000 else 250
        if limit <= 50:
            return 2
        if limit <= 100:
            return 5
        return 10 if limit <= 500 else 20


_FUTURES_KINDS: Final = ("depth", "aggTrade", "bookTicker", "markPrice", "forceOrder")
_FUTURES_LIMITS: Final = (5, 10, 20, 50, 100, 500, 1000)

MARKETS: Final[dict[str, BinanceMarket]] = {
    "binance": BinanceMarket(
        venue="binance",
        futures=False,
        depth_path="/api/v3/depth",
        exchange_info_path="/api/v3/exchangeInfo",
        open_interest_path="",
        speeds=("100ms", "1000ms"),
        unsuffixed_speed="1000ms",
        stream_kinds=("depth", "trade", "aggTrade", "bookTicker"),
        default_streams=("depth", "trade"),
        max_streams_per_connection=1024,
        depth_limits=(),
        weight_per_minute=6000,
    ),
    "binance-usdm": BinanceMarket(
        venue="binance-usdm",
        futures=True,
        depth_path="/fapi/v1/depth",
        exchange_info_path="/fapi/v1/exchangeInfo",
        open_interest_path="/fapi/v1/openInterest",
        speeds=("0ms", "100ms", "250ms", "500ms"),
        unsuffixed_speed="250ms",
        stream_kinds=_FUTURES_KINDS,
        default_streams=_FUTURES_KINDS,
        max_streams_per_connection=200,
        depth_limits=_FUTURES_LIMITS,
        weight_per_minute=2400,
    ),
    "binance-coinm": BinanceMarket(
        venue="binance-coinm",
        futures=True,
        depth_path="/dapi/v1/depth",
        exchange_info_path="/dapi/v1/exchangeInfo",
        open_interest_path="/dapi/v1/openInterest",
        speeds=("100ms", "250ms", "500ms"),
        unsuffixed_speed="250ms",
        stream_kinds=_FUTURES_KINDS,
        default_streams=_FUTURES_KINDS,
        max_streams_per_connection=200,
        depth_limits=_FUTURES_LIMITS,
        weight_per_minute=2400,
    ),
}


def market(venue: str) -> BinanceMarket:
    return MARKETS[venue]
