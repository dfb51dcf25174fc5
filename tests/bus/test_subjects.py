"""Subjects, tokens and message ids as docs/bus.md specifies them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shriven.bus.subjects import (
    MsgId,
    check_prefix,
    decode_token,
    encode_token,
    headers_for,
    parse_msg_id,
    subject_for,
)
from shriven.events import BinanceAggTrade, BinanceTrade, BookSnapshot, KiteTick, Status


def test_subject_is_prefix_venue_type_instrument() -> None:
    tick = KiteTick(1, 7, 256265, "full", 2500000)
    trade = BinanceTrade(1, 3, "BTCUSDT", 9, "1.0", "2.0", 5, 6, False)
    marker = Status(1, 1, "system", "started")
    assert subject_for("desk1.md", tick) == "desk1.md.kite.kite_tick.256265"
    assert subject_for("shriven", trade) == "shriven.binance.binance_trade.BTCUSDT"
    assert subject_for("shriven", marker) == "shriven.system.status.~"


def test_futures_records_and_book_snapshots_have_subjects_too() -> None:
    agg = BinanceAggTrade(1, 2, "binance-usdm", "BTCUSDT", 3, "1.0", "2.0", 4, 5, 6, 7, False)
    snap = BookSnapshot(1, 1, "kite", "256265", 9, ((1.0, 2.0),), ((3.0, 4.0),))
    assert subject_for("shriven", agg) == "shriven.binance-usdm.binance_agg_trade.BTCUSDT"
    assert subject_for("shriven", snap) == "shriven.kite.book_snapshot.256265"


def test_unsafe_characters_are_escaped_and_decode_back() -> None:
    assert encode_token("NIFTY 50") == "NIFTY~2050"
    assert encode_token("a.b*c>") == "a~2Eb~2Ac~3E"
    assert decode_token("NIFTY~2050") == "NIFTY 50"
    assert decode_token("~") == ""


@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=30))
def test_any_text_is_one_safe_token_that_round_trips(text: str) -> None:
    token = encode_token(text)
    assert token and not any(c in token for c in ". *>\t\r\n")
    assert decode_token(token) == text


def test_msg_id_round_trips_and_refuses_foreign_ids() -> None:
    mid = MsgId("rec-1", 1764678800123456789, "kite", 42)
    assert mid.text() == "rec-1:1764678800123456789:kite:42"
    assert parse_msg_id(mid.text()) == mid
    assert parse_msg_id("some-other-publisher-id") is None
    assert parse_msg_id("a b:1:kite:2") is None


def test_headers_carry_id_type_version_and_receive_time() -> None:
    tick = KiteTick(123, 7, 256265, "full", 2500000)
    h = headers_for(MsgId("r", 5, "kite", 7), tick)
    assert h["Nats-Msg-Id"] == "r:5:kite:7"
    assert h["Shriven-Type"] == "kite_tick"
    assert h["Shriven-Version"] == "1"
    assert h["Shriven-Recv-Ns"] == "123"


def test_a_prefix_with_spaces_or_wildcards_is_refused() -> None:
    assert check_prefix("shriven") is None
    assert check_prefix("desk-1.md") is None
    for bad in ("my prefix", "a.*", "a.>", "", "a..b", ".a"):
        assert "bad subject prefix" in (check_prefix(bad) or ""), bad
