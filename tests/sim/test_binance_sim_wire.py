"""The Binance simulator speaks byte for byte what the venue sends, through one copy of the
encoders (feeds/binance/wire.py): recorded venue messages come back from the real parser and the
encoders unchanged, and so does every message the simulator sends on each venue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shriven import events
from shriven.feeds.binance import wire
from shriven.feeds.binance.streams import parse_venue_message
from shriven.sim.binance import BinanceSimulator

ENCODERS = {
    events.BinanceDepth: wire.depth_event,
    events.BinanceTrade: wire.trade_event,
    events.BinanceFuturesDepth: wire.futures_depth_event,
    events.BinanceAggTrade: wire.agg_trade_event,
    events.BinanceBookTicker: wire.book_ticker_event,
    events.BinanceMarkPrice: wire.mark_price_event,
    events.BinanceForceOrder: wire.force_order_event,
}


def _again(venue: str, line: str) -> str:
    """``line`` (a combined-stream message) read by the real parser and written by wire.py."""
    record = parse_venue_message(line, 0, venue)
    assert record is not None
    return wire.combined(json.loads(line)["stream"], ENCODERS[type(record)](record))


@pytest.mark.parametrize(
    ("venue", "name"),
    [
        ("binance", "cryptofeed_spot/aggTrade.jsonl"),
        ("binance", "cryptofeed_spot/bookTicker.jsonl"),
        ("binance", "hftbacktest_spot_btcusdt_20240808/bookTicker_BTCUSDT.jsonl"),
        ("binance-usdm", "cryptofeed_usdm_futures/aggTrade.jsonl"),
        ("binance-usdm", "cryptofeed_usdm_futures/bookTicker.jsonl"),
    ],
)
def test_recorded_venue_messages_come_back_from_the_encoders_unchanged(
    binance_fixtures: Path, venue: str, name: str
) -> None:
    lines = (binance_fixtures / name).read_text().splitlines()
    assert lines
    for line in lines:
        assert _again(venue, line) == line


@pytest.mark.parametrize(
    ("venue", "symbols"),
    [
        ("binance", ("BTCUSDT", "ETHUSDT")),
        ("binance-usdm", ("BTCUSDT", "ETHUSDT")),
        ("binance-coinm", ("BTCUSD_PERP", "ETHUSD_250328")),
    ],
)
def test_every_simulated_message_is_what_the_encoders_write(
    venue: str, symbols: tuple[str, ...]
) -> None:
    sim = BinanceSimulator(symbols, venue=venue, seed=7, trade_probability=0.9)
    sim.send_liquidations(2)
    kinds: set[str] = set()
    for _ in range(150):
        for stream, kind, data in sim.step():
            line = wire.combined(stream, data)
            assert _again(venue, line) == line, kind
            kinds.add(kind)
    spot = {"depth", "bookTicker", "trade", "aggTrade"}
    futures = {"depth", "bookTicker", "aggTrade", "markPrice", "forceOrder"}
    assert kinds == (spot if venue == "binance" else futures)
