"""Market hours and the nonsense-value checks."""

from __future__ import annotations

from datetime import datetime

from shriven.clock import IST
from shriven.events import BinanceDepth, BinanceTrade, KiteTick
from shriven.pipeline.validate import check_record, market_open


def ist(*args: int) -> float:
    return datetime(*args, tzinfo=IST).timestamp()


def test_nse_is_open_from_0915_to_1530_ist_on_weekdays_only() -> None:
    assert not market_open("kite", ist(2026, 11, 27, 9, 14, 59))  # a Friday
    assert market_open("kite", ist(2026, 11, 27, 9, 15))
    assert market_open("kite", ist(2026, 11, 27, 15, 29, 59))
    assert not market_open("kite", ist(2026, 11, 27, 15, 30))
    assert not market_open("kite", ist(2026, 11, 28, 11, 0))  # Saturday
    assert market_open("binance", ist(2026, 11, 28, 3, 0))


def test_sane_records_pass() -> None:
    assert check_record(KiteTick(1, 1, 256265, "full", 0, bids=((0, 0, 0),))) is None
    assert check_record(BinanceTrade(1, 1, "BTCUSDT", 1, "100.5", "0.01", 1, 1, True)) is None
    d = BinanceDepth(1, 1, "BTCUSDT", 5, 7, 1, (("100.0", "0.00000000"),), (("101", "2"),))
    assert check_record(d) is None


def test_nonsense_values_are_named() -> None:
    assert check_record(KiteTick(1, 1, 256265, "ltp", -5)) == "kite_negative_value"
    bad_depth = KiteTick(1, 1, 256265, "full", 5, asks=((10, -1, 1), (11, 1, 1)))
    assert check_record(bad_depth) == "kite_negative_depth"
    assert check_record(BinanceTrade(1, 1, "X", 1, "0", "1", 1, 1, True)) == "binance_bad_trade"
    assert check_record(BinanceTrade(1, 1, "X", 1, "nan", "1", 1, 1, True)) == "binance_bad_trade"
    reversed_ids = BinanceDepth(1, 1, "X", 9, 7, 1, (), ())
    assert check_record(reversed_ids) == "binance_update_ids_reversed"
    garbage = BinanceDepth(1, 1, "X", 1, 2, 1, (("abc", "1"),), ())
    assert check_record(garbage) == "binance_bad_level"
