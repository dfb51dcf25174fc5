from __future__ import annotations

import json
from pathlib import Path

import pytest

from shriven.events import BinanceDepth, BinanceTrade
from shriven.feeds.binance.parse import (
    BinanceMessageError,
    ServerShutdown,
    parse_depth_snapshot,
    parse_message,
)


def test_wrapped_depth_update_keeps_the_exact_strings(binance_fixtures: Path) -> None:
    line = (binance_fixtures / "cryptofeed_spot" / "depth_diff_NKNUSDT.jsonl").read_text()
    first = line.splitlines()[0]
    rec = parse_message(first, 123, 4)
    assert isinstance(rec, BinanceDepth)
    assert (rec.recv_ns, rec.seq, rec.symbol) == (123, 4, "NKNUSDT")
    assert (rec.first_update_id, rec.last_update_id, rec.event_time) == (
        499869750,
        499869752,
        1633998512068,
    )
    assert rec.bids[0] == ("0.35130000", "6195.00000000") and rec.asks == ()


def test_bare_trade_and_bytes_input(binance_fixtures: Path) -> None:
    path = binance_fixtures / "hftbacktest_spot_btcusdt_20240808" / "trade_BTCUSDT.jsonl"
    wrapped = path.read_text().splitlines()[0]
    bare = json.dumps(json.loads(wrapped)["data"]).encode()
    for raw in (wrapped, bare):
        rec = parse_message(raw, 1)
        assert isinstance(rec, BinanceTrade)
        assert (rec.symbol, rec.trade_id, rec.price, rec.quantity) == (
            "BTCUSDT",
            3735683259,
            "61837.63000000",
            "0.02000000",
        )
        assert (rec.trade_time, rec.event_time, rec.buyer_is_maker) == (
            1723161255342,
            1723161255343,
            True,
        )


def test_every_real_message_kind_parses_or_is_named(binance_fixtures: Path) -> None:
    kinds: dict[str, int] = {}
    path = binance_fixtures / "cryptofeed_spot" / "combined_stream_all.jsonl"
    for line in path.read_text().splitlines():
        try:
            rec = parse_message(line, 0)
            kinds[type(rec).__name__] = kinds.get(type(rec).__name__, 0) + 1
        except BinanceMessageError as exc:
            kinds[exc.kind] = kinds.get(exc.kind, 0) + 1
    assert kinds == {
        "BinanceDepth": 177,
        "unexpected_bookTicker": 84,
        "unexpected_aggTrade": 2,
        "unexpected_kline": 2,
    }


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ('{"stream":"x@trade","data":{"e":"tra', "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        ("[1, 2]", "unexpected_message"),
        ('{"e":"depthUpdate","s":"BTCUSDT","U":1}', "bad_depthUpdate"),
        ('{"e":"depthUpdate","s":"X","U":1,"u":2,"E":3,"b":[["1"]],"a":[]}', "bad_depthUpdate"),
        ('{"e":"trade","s":"BTCUSDT","t":"x"}', "bad_trade"),
        ('{"code":-1121,"msg":"Invalid symbol."}', "venue_error"),
        ('{"e":"somethingNew"}', "unexpected_event"),
    ],
)
def test_bad_messages_raise_a_named_kind_with_a_sample(raw: str | bytes, kind: str) -> None:
    with pytest.raises(BinanceMessageError) as info:
        parse_message(raw, 0)
    assert info.value.kind == kind
    assert info.value.sample


def test_subscription_acknowledgement_is_not_a_record() -> None:
    assert parse_message('{"result":null,"id":1}', 0) is None


def test_server_shutdown_is_its_own_error() -> None:
    with pytest.raises(ServerShutdown):
        parse_message('{"e":"serverShutdown","E":1}', 0)


def test_snapshot_answer(binance_fixtures: Path) -> None:
    body = (binance_fixtures / "cryptofeed_spot" / "depth_snapshot_RUNEEUR.json").read_bytes()
    snap = parse_depth_snapshot(body, "RUNEEUR", 5)
    assert snap.last_update_id == 15602511 and len(snap.bids) == 221 and len(snap.asks) == 468
    with pytest.raises(BinanceMessageError, match="bad_snapshot"):
        parse_depth_snapshot(b'{"lastUpdateId": 1}', "X", 0)
    with pytest.raises(BinanceMessageError, match="bad_snapshot"):
        parse_depth_snapshot(b"<html>", "X", 0)
