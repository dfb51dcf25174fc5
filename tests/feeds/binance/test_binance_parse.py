from __future__ import annotations

import json
from pathlib import Path

import pytest

from shriven.events import BinanceDepth, BinanceTrade
from shriven.feeds.binance.parse import (
    ERROR_KINDS,
    BinanceMessageError,
    ServerShutdown,
    parse_depth_snapshot,
    parse_message,
)
from shriven.feeds.binance.rest import venue_message


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


def _trade(**changes: object) -> str:
    data = {"e": "trade", "E": 2, "s": "BTCUSDT", "t": 7, "p": "1.50", "q": "2", "T": 1, "m": True}
    data.update(changes)
    return json.dumps({"stream": "btcusdt@trade", "data": data})


def _diff(stream: str = "btcusdt@depth@100ms", **changes: object) -> str:
    data = {
        "e": "depthUpdate",
        "E": 2,
        "s": "BTCUSDT",
        "U": 1,
        "u": 2,
        "b": [["1.5", "2"]],
        "a": [],
    }
    data.update(changes)
    return json.dumps({"stream": stream, "data": data})


# Each of these became a record before the schema (issue 12).
@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (_trade(m="false"), "bad_trade"),
        (_trade(t="1_001"), "bad_trade"),
        (_trade(t="\uff11"), "bad_trade"),
        (_trade(t=1.9), "bad_trade"),
        (_trade(t=True), "bad_trade"),
        (_trade(p=None), "bad_trade"),
        (_trade(p="NaN"), "bad_trade"),
        (_trade(p="-1"), "bad_trade"),
        (_trade(p="inf"), "bad_trade"),
        (_trade(p="\ud800"), "malformed_json"),
        (_trade(E=2**64), "bad_trade"),
        (_trade(s=["BTCUSDT"]), "bad_trade"),
        (_trade().replace('"E": 2', '"E": 1e400'), "malformed_json"),
        (_trade().replace('"t": 7', '"t": Infinity'), "malformed_json"),
        (_diff(b=[["ab"]]), "bad_depthUpdate"),
        (_diff(b=[["abc", "1"]]), "bad_depthUpdate"),
        (_diff(b=[["1", "2", "3"]]), "bad_depthUpdate"),
        (_diff(u=2**63), "bad_depthUpdate"),
        (_diff(stream="ethusdt@trade"), "stream_mismatch"),
        (_diff(stream="btcusdt@trade"), "stream_mismatch"),
        (_diff(stream="ethusdt@depth@100ms", s="ETHUSDT"), "unknown_symbol"),
        ("[" * 100_000 + "]" * 100_000, "malformed_json"),
        (_trade(x="@").replace('"@"', "[" * 100_000 + "]" * 100_000), "malformed_json"),
    ],
)
def test_values_outside_the_schema_are_refused_under_a_fixed_kind(raw: str, kind: str) -> None:
    with pytest.raises(BinanceMessageError) as info:
        parse_message(raw, 0, 0, frozenset({"BTCUSDT"}))
    assert info.value.kind == kind and kind in ERROR_KINDS
    assert len(info.value.sample) <= 4 * 200 + 3 and len(str(info.value)) < 1_000


def test_genuine_shapes_still_parse_exactly() -> None:
    trade = parse_message(_trade(m=False), 5, 0, frozenset({"BTCUSDT"}))
    assert trade == BinanceTrade(5, 0, "BTCUSDT", 7, "1.50", "2", 1, 2, False)
    diff = parse_message(_diff(stream="btcusdt@depth"), 5, 0, frozenset({"BTCUSDT"}))
    assert type(diff) is BinanceDepth and diff.bids == (("1.5", "2"),)


def test_error_kinds_never_come_from_the_message() -> None:
    kinds = set()
    for event in ("x" * 10_000, "bookTicker", "1", "", "depthUpdateX"):
        with pytest.raises(BinanceMessageError) as info:
            parse_message(json.dumps({"e": event}), 0)
        kinds.add(info.value.kind)
    assert kinds <= ERROR_KINDS and kinds == {"unexpected_event", "unexpected_bookTicker"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"lastUpdateId": 1, "bids": [["NaN", "1"]], "asks": []}',
        b'{"lastUpdateId": 1, "bids": [["-1", "1"]], "asks": []}',
        b'{"lastUpdateId": 1, "bids": [["1", "1", "1"]], "asks": []}',
        b'{"lastUpdateId": 1.5, "bids": [], "asks": []}',
        b'{"lastUpdateId": 18446744073709551616, "bids": [], "asks": []}',
        b'{"lastUpdateId": "1", "bids": [], "asks": []}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_snapshot_answer_outside_the_schema_is_bad_snapshot(body: bytes) -> None:
    with pytest.raises(BinanceMessageError) as info:
        parse_depth_snapshot(body, "BTCUSDT", 0)
    assert info.value.kind == "bad_snapshot"


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"code": -1, "msg": "x" * 1_000_000}).encode(),
        json.dumps({"code": "y" * 1_000, "msg": "z"}).encode(),
        b"[" * 100_000 + b"]" * 100_000,
        b"<html>" + b"x" * 100_000,
    ],
)
def test_a_rest_error_answer_becomes_a_bounded_message(body: bytes) -> None:
    text = venue_message(body)
    assert 0 < len(text) <= 200


# Python's "$" also matches before a final newline: "1.0\n" passed msgspec's pattern check.
@pytest.mark.parametrize("raw", [_trade(p="1.0\n"), _trade(q="2\n"), _trade(s="BTCUSDT\n")])
def test_a_trailing_newline_is_not_part_of_a_decimal_or_symbol(raw: str) -> None:
    with pytest.raises(BinanceMessageError) as info:
        parse_message(raw, 0, 0)
    assert info.value.kind == "bad_trade"


# Binance's diff streams are <symbol>@depth and <symbol>@depth@100ms (or @1000ms): anything
# after "@depth@" was taken as a depth stream.
@pytest.mark.parametrize("stream", ["btcusdt@depth@zzz", "btcusdt@depth@", "btcusdt@depth@1s@x"])
def test_a_depth_stream_name_with_an_unknown_speed_is_a_mismatch(stream: str) -> None:
    with pytest.raises(BinanceMessageError) as info:
        parse_message(_diff(stream=stream), 0, 0, frozenset({"BTCUSDT"}))
    assert info.value.kind == "stream_mismatch"


def test_the_documented_depth_stream_names_parse() -> None:
    for stream in ("btcusdt@depth", "btcusdt@depth@100ms", "btcusdt@depth@1000ms"):
        assert type(parse_message(_diff(stream=stream), 0, 0)) is BinanceDepth
