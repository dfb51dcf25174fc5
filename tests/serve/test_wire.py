"""The pure encoders behind the server: what they write is what the venues' parsers (ours, and
the recorded layouts) read back as the same records."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from replay.synth import generate
from shriven.events import (
    KITE_MODES,
    KITE_SEGMENT_INDICES,
    BinanceDepth,
    BinanceForceOrder,
    BinanceMarkPrice,
    BinanceTrade,
    KiteTick,
    SeqCounter,
    encode_batch,
)
from shriven.feeds.binance.parse import parse_depth_snapshot, parse_message
from shriven.feeds.binance.streams import parse_futures_snapshot, parse_venue_message
from shriven.feeds.binance.wire import (
    combined,
    depth_answer,
    depth_event,
    futures_depth_answer,
    trade_event,
)
from shriven.feeds.kite.protocol import encode_packet
from shriven.feeds.kite.protocol import parse_message as parse_kite
from shriven.serve.binance_wire import BinanceSubscriptions, EventEncoder, parse_streams
from shriven.serve.frames import binary_frame, text_frame
from shriven.serve.kite_wire import (
    KiteSubscriptions,
    MessageEncoder,
    WireTick,
    live_records,
    packet,
)


def test_binance_events_parse_back_to_the_recorded_records(binance_fixtures: Path) -> None:
    records = [r for r in generate(seed=3, seconds=20) if type(r) in (BinanceDepth, BinanceTrade)]
    assert len(records) > 200
    for r in records:
        data = depth_event(r) if type(r) is BinanceDepth else trade_event(r)  # type: ignore[arg-type]
        stream = f"{r.symbol.lower()}@{'depth@100ms' if type(r) is BinanceDepth else 'trade'}"  # type: ignore[union-attr]
        back = parse_message(combined(stream, data), r.recv_ns, r.seq)
        assert back == r


def test_a_depth_answer_parses_to_the_book_it_came_from() -> None:
    bids = [(67000.01, 0.5), (66999.5, 12.0)]
    asks = [(67000.02, 0.00001), (67001.0, 3.25)]
    snap = parse_depth_snapshot(depth_answer(42, bids, asks), "BTCUSDT", 1)
    assert snap.last_update_id == 42
    assert [(float(p), float(q)) for p, q in snap.bids] == bids
    assert [(float(p), float(q)) for p, q in snap.asks] == asks


def _ticks() -> list[KiteTick]:
    return [r for r in generate(seed=5, seconds=30) if type(r) is KiteTick]  # type: ignore[misc]


def test_live_runs_join_into_messages_of_at_most_the_limit_and_parse_back() -> None:
    ticks = _ticks()[:60]
    runs = [ticks[i : i + 6] for i in range(0, 60, 6)]
    subs = KiteSubscriptions(3000)
    subs.control(json.dumps({"a": "subscribe", "v": sorted({t.instrument_token for t in ticks})}))
    subs.control(json.dumps({"a": "mode", "v": ["full", list(subs.modes)]}))
    joined = MessageEncoder(runs, 25).messages_for(subs)
    assert [len(parse_kite(m, 0, SeqCounter())) for m in joined] == [24, 24, 12]
    exact = MessageEncoder(runs).messages_for(subs)
    assert len(exact) == 10 and b"".join(m[2:] for m in exact) == b"".join(
        m[2:] for m in MessageEncoder([[t] for t in ticks]).messages_for(subs)
    )
    back = [t for m in joined for t in parse_kite(m, 0, SeqCounter())]

    def strip(ts: list[KiteTick]) -> list[tuple[object, ...]]:
        return [(t.instrument_token, t.mode, t.last_price, t.bids) for t in ts]

    assert strip(back) == strip(ticks)


def test_a_smaller_mode_gets_the_smaller_layout_and_unsubscribed_tokens_nothing() -> None:
    ticks = [t for t in _ticks() if t.mode == "full"][:20]
    token = ticks[0].instrument_token
    subs = KiteSubscriptions(3000)
    assert subs.control(json.dumps({"a": "subscribe", "v": [token]})) == []
    (message,) = MessageEncoder([ticks]).messages_for(subs)
    got = parse_kite(message, 0, SeqCounter())
    assert {t.mode for t in got} == {"quote"}  # a bare subscribe is quote, as on Kite
    assert len(got) == sum(t.instrument_token == token for t in ticks)
    subs.control(json.dumps({"a": "unsubscribe", "v": [token]}))
    assert MessageEncoder([ticks]).messages_for(subs) == []


def test_kite_control_errors_and_the_subscription_limit() -> None:
    subs = KiteSubscriptions(2)
    (error,) = subs.control(json.dumps({"a": "subscribe", "v": [1, 2, 3]}))
    assert json.loads(error) == {"type": "error", "data": "maximum instruments reached (2)"}
    assert sorted(subs.modes) == [1, 2]
    for bad in ["{", '{"a": "subscribe", "v": [-1]}', '{"a": "dance", "v": []}', "[]"]:
        (reply,) = subs.control(bad)
        assert json.loads(reply)["type"] == "error"


def test_binance_streams_by_name_and_raw() -> None:
    trade = next(r for r in generate(seed=3, seconds=20) if type(r) is BinanceTrade)
    subs = BinanceSubscriptions(10, {f"{trade.symbol.lower()}@trade"})
    enc = EventEncoder(trade)
    wrapped = json.loads(enc.message_for(subs) or "")
    assert (
        wrapped["stream"] == f"{trade.symbol.lower()}@trade"
        and wrapped["data"]["t"] == trade.trade_id
    )
    raw = BinanceSubscriptions(10, set(subs.streams), raw=True)
    assert json.loads(enc.message_for(raw) or "")["e"] == "trade"
    assert enc.message_for(BinanceSubscriptions(10, {"btcusdt@depth"})) in (
        None,
        enc.message_for(BinanceSubscriptions(10, {"btcusdt@depth"})),
    )


def test_binance_unsubscribe_and_the_stream_limit() -> None:
    subs = BinanceSubscriptions(2)
    ok = subs.control(
        '{"method": "SUBSCRIBE", "params": ["btcusdt@trade", "BTCUSDT@depth"], "id": 1}'
    )
    assert json.loads(ok or "") == {"result": None, "id": 1}
    assert subs.streams == {"btcusdt@trade", "btcusdt@depth"}
    full = json.loads(
        subs.control('{"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 2}') or ""
    )
    assert full["error"]["code"] == 2 and "at most 2 streams" in full["error"]["msg"]
    subs.control('{"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 3}')
    assert subs.streams == {"btcusdt@depth"}


def _recorded_data(line: str) -> str:
    """The ``data`` object of a recorded combined-stream line, as the venue's bytes."""
    start = line.index('"data":') + len('"data":')
    return line[start:].rstrip()[:-1]


def test_futures_and_spot_events_are_the_venue_bytes_they_were_recorded_from(
    binance_fixtures: Path,
) -> None:
    """Real USD-M and spot recordings: parsed to records, re-encoded, byte-equal to the data the
    venue sent (the field order clients compare by eye, and the strings as recorded)."""
    checked: dict[tuple[str, type], int] = {}
    usdm = ("depth_diff_AKROUSDT", "aggTrade", "bookTicker")
    for venue, folder, files in (
        ("binance-usdm", "cryptofeed_usdm_futures", usdm),
        ("binance", "cryptofeed_spot", ("aggTrade", "bookTicker")),
    ):
        for name in files:
            lines = (binance_fixtures / folder / f"{name}.jsonl").read_text().splitlines()
            for i, line in enumerate(lines[:300]):
                r = parse_venue_message(line, i, venue, i)
                assert r is not None
                stream = json.loads(line)["stream"]
                subs = BinanceSubscriptions(10, {stream}, venue=venue)
                assert EventEncoder(r).message_for(subs) == combined(stream, _recorded_data(line))
                checked[(venue, type(r))] = checked.get((venue, type(r)), 0) + 1
    assert len(checked) == 5 and min(checked.values()) >= 2  # spot aggTrade: 2 recorded


def test_futures_only_events_and_answers_parse_back_to_their_records() -> None:
    """markPrice and forceOrder (no real recording at hand) and the depth answers: what the
    recorder's own parser reads back from them is the record they came from."""
    mark = BinanceMarkPrice(
        5, 1, "binance-coinm", "BTCUSD_250328", 1700, "97000.1", "", "97010.5", "", 0
    )
    force = BinanceForceOrder(
        6, 2, "binance-usdm", "BTCUSDT", 1701, "SELL", "LIMIT", "IOC", "0.014", "96000.5",
        "96001.2", "FILLED", "0.014", "0.014", 1700,
    )  # fmt: skip
    for r, stream in ((mark, "btcusd_250328@markPrice@1s"), (force, "btcusdt@forceOrder")):
        subs = BinanceSubscriptions(10, {stream}, venue=r.venue)
        message = EventEncoder(r).message_for(subs)
        assert message is not None and '"i"' not in message
        assert parse_venue_message(message, r.recv_ns, r.venue, r.seq) == r
    body = futures_depth_answer(
        "binance-coinm", "BTCUSD_PERP", 42, 1700, 1699, [(97000.1, 2.0)], [(97000.2, 0.5)]
    )
    assert json.loads(body)["pair"] == "BTCUSD"
    snap = parse_futures_snapshot(body, "binance-coinm", "BTCUSD_PERP", 3)
    assert (snap.last_update_id, snap.event_time, snap.transaction_time) == (42, 1700, 1699)
    assert [(float(p), float(q)) for p, q in snap.bids] == [(97000.1, 2.0)]


def test_each_venue_accepts_its_own_stream_names_only() -> None:
    assert parse_streams(["BTCUSD_PERP@depth@500ms", "btcusd_perp@markPrice"], "binance-coinm") == [
        "btcusd_perp@depth@500ms",
        "btcusd_perp@markPrice",
    ]
    for venue, bad in (
        ("binance-usdm", "btcusdt@trade"),  # futures have aggTrade only
        ("binance-coinm", "btcusd_perp@depth@0ms"),  # USD-M's speed
        ("binance", "btcusdt@markPrice"),
    ):
        subs = BinanceSubscriptions(10, venue=venue)
        reply = json.loads(
            subs.control(json.dumps({"method": "SUBSCRIBE", "params": [bad], "id": 7})) or ""
        )
        assert reply["error"]["code"] == 2 and bad in reply["error"]["msg"] and not subs.streams


def test_a_futures_depth_event_parses_back_to_its_record() -> None:
    from shriven.events import BinanceFuturesDepth
    from shriven.feeds.binance.streams import parse_venue_message
    from shriven.feeds.binance.wire import futures_depth_event

    d = BinanceFuturesDepth(
        7, 3, "binance-usdm", "BTCUSDT", 101, 105, 100, 1_700_000_000_123, 1_700_000_000_121,
        (("67000.10", "1.500"), ("66999.90", "0.000")), (("67000.20", "2.000"),),
    )  # fmt: skip
    text = combined("btcusdt@depth@100ms", futures_depth_event(d))
    assert parse_venue_message(text, 7, "binance-usdm", 3) == d
    assert list(json.loads(text)["data"]) == ["e", "E", "T", "s", "U", "u", "pu", "b", "a"]


def test_the_live_fan_out_sends_each_recorded_packet_without_decoding_it(
    kite_fixtures: Path,
) -> None:
    real = [
        t
        for name in ("ticker_full.packet", "ticker_quote.packet")
        for t in parse_kite(base64.b64decode((kite_fixtures / name).read_text()), 0, SeqCounter())
    ]
    index = 256265  # NIFTY 50: a token of the indices segment (its low byte is 9)
    made = [
        KiteTick(1, 1, index, "quote", 2_450_000, high=2, low=3, open=4, close=5, change=-7),
        KiteTick(1, 2, index, "full", 2_450_000, high=2, low=3, open=4, close=5, change=7,
                 exchange_timestamp=1_700_000_000),
        KiteTick(1, 3, 738561, "ltp", 250_000),
        KiteTick(1, 4, 738561, "full", 250_000, bids=((249_900, 10, 2),), asks=()),
    ]  # fmt: skip
    ticks = real + [t for t in _ticks() if t.mode != "ltp"][:50] + made
    assert {t.mode for t in ticks} == {"ltp", "quote", "full"}
    live = live_records(encode_batch(ticks))
    assert all(type(w) is WireTick for w in live)
    for tick, wire in zip(ticks, live, strict=True):
        index_layout = tick.instrument_token & 0xFF == KITE_SEGMENT_INDICES
        for mode in ("ltp", "quote", "full"):
            sent = mode if KITE_MODES.index(mode) < KITE_MODES.index(tick.mode) else tick.mode
            expected = encode_packet(dataclasses.replace(tick, mode=sent), index=index_layout)
            assert packet(wire, mode) == packet(tick, mode) == expected, (tick, mode)
    assert live_records(encode_batch(ticks), kite=False) == []  # no Kite client: nothing built


def test_server_frames_of_every_length_form_parse_in_the_websockets_library() -> None:
    # One frame's bytes go to every client of a group: they must be a whole, unmasked frame
    # as a client's own parser reads it, at the 7-bit, 16-bit and 64-bit length forms.
    for n in (0, 125, 126, 65_535, 65_536, 200_000):
        reader = StreamReader()
        reader.feed_data(binary_frame(b"x" * n) + text_frame("é" * n))
        for opcode, data in ((Opcode.BINARY, b"x" * n), (Opcode.TEXT, ("é" * n).encode())):
            parse = Frame.parse(reader.read_exact, mask=False)
            with pytest.raises(StopIteration) as done:
                next(parse)
            got = done.value.value
            assert (got.opcode, got.fin, got.data) == (opcode, True, data)
