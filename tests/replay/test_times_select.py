"""Time parsing in the market zone, and which records a --symbol/--kind/--venue selects."""

from __future__ import annotations

from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest

from shriven.errors import ReplayError
from shriven.events import BinanceDepth, BookSnapshot, KiteTick, Status
from shriven.replay.select import Selection, parse_kinds, resolve_symbols
from shriven.replay.times import format_ns, load_zone, parse_instant

IST = load_zone("Asia/Kolkata")
UTC = load_zone("UTC")
NS = 1_000_000_000


def test_time_without_offset_is_read_in_the_market_zone() -> None:
    # 09:15 IST is 03:45 UTC
    assert parse_instant("2025-08-01T09:15:00", IST) == parse_instant("2025-08-01T03:45:00Z", IST)
    assert parse_instant("2025-08-01T09:15:00", UTC) == parse_instant("2025-08-01T09:15:00Z", IST)


def test_offsets_fractions_and_dates() -> None:
    base = parse_instant("2025-08-01T03:45:00Z", IST)
    assert parse_instant("2025-08-01T09:15:00+05:30", UTC) == base
    assert parse_instant("2025-08-01 09:15:00+0530", UTC) == base
    assert parse_instant("2025-08-01T09:15", IST) == base
    assert parse_instant("2025-08-01T09:15:00.000000123", IST) == base + 123
    assert parse_instant("2025-08-01T09:15:00.5", IST) == base + NS // 2
    assert parse_instant("2025-08-01", IST) == base - (9 * 3600 + 15 * 60) * NS


def test_format_states_the_zone_and_round_trips_nanoseconds() -> None:
    ns = parse_instant("2025-08-01T09:15:00.123456789", IST)
    assert format_ns(ns, IST) == "2025-08-01T09:15:00.123456789+05:30"
    assert format_ns(ns, UTC) == "2025-08-01T03:45:00.123456789Z"
    assert parse_instant(format_ns(ns, IST), UTC) == ns


@pytest.mark.parametrize("bad", ["yesterday", "2025-13-01T00:00:00", "2025-08-01T25:00", ""])
def test_bad_times_say_what_to_write(bad: str) -> None:
    with pytest.raises(ReplayError, match=r"ISO 8601|cannot read"):
        parse_instant(bad, IST)


def test_unknown_zone_is_one_clear_error() -> None:
    with pytest.raises(ReplayError, match="unknown time zone 'Mars/Base'"):
        load_zone("Mars/Base")


class Row(NamedTuple):
    instrument_token: int
    tradingsymbol: str
    name: str
    segment: str
    exchange: str


TABLE = [
    Row(256265, "NIFTY 50", "NIFTY 50", "INDICES", "NSE"),
    Row(260105, "NIFTY BANK", "NIFTY BANK", "INDICES", "NSE"),
    Row(12_288_002, "NIFTY25AUGFUT", "NIFTY", "NFO-FUT", "NFO"),
    Row(12_288_258, "NIFTY25AUG24500CE", "NIFTY", "NFO-OPT", "NFO"),
    Row(12_288_514, "NIFTY25AUG24500PE", "NIFTY", "NFO-OPT", "NFO"),
    Row(12_544_002, "BANKNIFTY25AUGFUT", "BANKNIFTY", "NFO-FUT", "NFO"),
    # an old dump leaves derivative names empty: the trading symbol says the underlying
    Row(12_073_986, "BANKNIFTY18JAN23500CE", "", "NFO-OPT", "NFO"),
    Row(738561, "RELIANCE", "RELIANCE INDUSTRIES", "NSE", "NSE"),
]


def test_spot_name_selects_spot_futures_and_options() -> None:
    keys, described = resolve_symbols(["NIFTY 50"], TABLE)
    assert keys == {"kite:256265", "kite:12288002", "kite:12288258", "kite:12288514"}
    assert "1 futures and 2 options of NIFTY" in described[0]
    keys, _ = resolve_symbols(["nifty bank"], TABLE)
    assert keys == {"kite:260105", "kite:12544002", "kite:12073986"}


def test_trading_symbol_token_and_binance_symbol() -> None:
    keys, _ = resolve_symbols(["NIFTY25AUGFUT", "256265", "btcusdt"], TABLE)
    assert keys == {"kite:12288002", "kite:256265", "binance:BTCUSDT"}
    keys, _ = resolve_symbols(["RELIANCE"], TABLE)
    assert keys == {"kite:738561"}


def test_without_the_instruments_table_kite_names_fail_clearly() -> None:
    keys, described = resolve_symbols(["256265", "BTCUSDT"], None)
    assert keys == {"kite:256265", "binance:BTCUSDT"}
    assert "no Kite instruments table" in described[1]
    with pytest.raises(ReplayError, match="shriven instruments fetch"):
        resolve_symbols(["NIFTY 50"], None)


def test_unknown_name_with_a_table_is_an_error() -> None:
    with pytest.raises(ReplayError, match="unknown symbol 'NIFTY 5'"):
        resolve_symbols(["NIFTY 5"], TABLE)


def test_kinds() -> None:
    # Every recorded kind but our own book snapshots (lob/); the futures-era kinds included.
    assert parse_kinds(None) == {
        "ticks", "trades", "depth", "status", "tickers", "marks", "liquidations", "open_interest"
    }  # fmt: skip
    assert parse_kinds(["ticks,depth", "snapshots"]) == {"ticks", "depth", "snapshots"}
    with pytest.raises(ReplayError, match="unknown kind 'quotes'"):
        parse_kinds(["quotes"])


def test_selection_keeps_venue_wide_and_system_markers_of_selected_venues() -> None:
    sel = Selection(parse_kinds(["ticks,depth,status,snapshots"]), None, frozenset({"kite:256265"}))
    tick = KiteTick(1, 1, 256265, "ltp", 100)
    other = KiteTick(1, 2, 260105, "ltp", 100)
    diff = BinanceDepth(1, 1, "BTCUSDT", 1, 2, 0, (), ())
    assert sel.matches(tick) and not sel.matches(other) and not sel.matches(diff)
    assert sel.matches(Status(1, 1, "kite", "disconnected"))
    assert sel.matches(Status(1, 1, "system", "started"))
    assert not sel.matches(Status(1, 1, "binance", "disconnected"))
    assert sel.matches(BookSnapshot(1, 1, "kite", "256265", 1, (), ()))
    venue_only = Selection(parse_kinds(None), "binance")
    assert venue_only.matches(diff) and not venue_only.matches(tick)
    assert not venue_only.matches(Status(1, 1, "system", "started"))
    with pytest.raises(ReplayError, match="unknown venue"):
        Selection(parse_kinds(None), "nse")


@pytest.mark.parametrize("offset", ["+24:00", "-25:00", "+99:00", "+05:60", "+2400"])
def test_an_offset_beyond_a_day_is_refused(offset: str) -> None:
    with pytest.raises(ReplayError, match="is not a UTC offset"):
        parse_instant(f"2026-11-20T10:00:00{offset}", ZoneInfo("Asia/Kolkata"))


def test_the_widest_offsets_are_read() -> None:
    zone = ZoneInfo("UTC")
    assert parse_instant("2026-11-20T23:59:00+23:59", zone) == parse_instant(
        "2026-11-20T00:00:00Z", zone
    )
