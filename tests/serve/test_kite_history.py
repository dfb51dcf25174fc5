"""History over the Kite ticker protocol, read by kiteconnect's own KiteTicker: every tick it
decodes equals the recorded record, the recorded bytes come back byte-equal, the stream ends
with a close frame that says why, and a range outside the store is refused with a reason."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

from replay.synth import BANK_FUT, NIFTY_CE, NIFTY_FUT, NIFTY_SPOT, T0
from shriven.events import KiteTick, Record, SeqCounter, Status, StatusKind
from shriven.feeds.kite.protocol import parse_message
from shriven.wal import StoreWriter, WalOptions

from .helpers import kiteconnect_view, run_kite_client, serving, ticks_of

NS = 1_000_000_000


def _iso(ns: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ns / NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def test_kiteticker_decodes_every_recorded_tick_of_a_range(
    tmp_path: Path, synth_store: Path, synth_records: list[Record]
) -> None:
    start, end = T0 + 20 * NS, T0 + 50 * NS
    modes = {NIFTY_FUT: "full", NIFTY_CE: "quote", NIFTY_SPOT: "ltp", 999_999: "full"}
    async with serving(synth_store) as server:
        root = server.url.replace("http", "ws") + f"/kite/history/{_iso(start)}/{_iso(end)}/max"
        events = await run_kite_client(tmp_path, root, modes, 30)
    got = ticks_of(events)
    for token, mode in modes.items():
        recorded = [
            kiteconnect_view(r, mode)
            for r in synth_records
            if type(r) is KiteTick and r.instrument_token == token and start <= r.recv_ns < end
        ]
        assert [t for t in got if t["instrument_token"] == token] == recorded, token
    assert not [t for t in got if t["instrument_token"] == BANK_FUT]  # never subscribed
    assert len(got) > 500
    close = events[-1]
    assert close["close"] == 1000 and close["reason"].startswith("end of history")


async def test_recorded_packets_come_back_byte_equal_with_heartbeats_and_text(
    tmp_path: Path, kite_fixtures: Path
) -> None:
    full = base64.b64decode((kite_fixtures / "ticker_full.packet").read_text())
    quote = base64.b64decode((kite_fixtures / "ticker_quote.packet").read_text())
    message = struct.pack(">HH", 2, len(full)) + full + struct.pack(">H", len(quote)) + quote
    recv = T0 + 5 * NS
    ticks = parse_message(message, recv, SeqCounter())
    data = tmp_path / "store"
    store = StoreWriter(data, WalOptions(fsync_policy="never"))
    text = '{"data":"market closes early today","type":"message"}'
    notice = Status(recv + 3 * NS, 1, "kite", StatusKind.VENUE_MESSAGE, "", text)
    store.append_ticks([Status(T0, 1, "system", StatusKind.STARTED), *ticks, notice])
    store.close()
    token = ticks[0].instrument_token
    async with serving(data) as server:
        root = server.url.replace("http", "ws")
        root += f"/kite/history/{_iso(T0)}/{_iso(T0 + 10 * NS)}/2x"  # 1.5 s between the two
        events = await run_kite_client(tmp_path, root, {token: "full"}, 20)
    binary = [bytes.fromhex(e["bin"]) for e in events if "bin" in e]
    assert [b for b in binary if b != b"\x00"] == [message]
    assert b"\x00" in binary  # Kite's 1-byte heartbeat filled the silence
    assert [e["text"] for e in events if "text" in e] == [text]
    assert events[-1]["close"] == 1000


async def test_history_paced_at_10x_keeps_the_recorded_spacing(
    tmp_path: Path, synth_store: Path
) -> None:
    start, end = T0 + 30 * NS, T0 + 50 * NS  # 20 s recorded: 2 s at 10x
    async with serving(synth_store) as server:
        root = server.url.replace("http", "ws") + f"/kite/history/{_iso(start)}/{_iso(end)}/10x"
        events = await run_kite_client(tmp_path, root, {NIFTY_FUT: "full"}, 30)
    assert events[-1]["close"] == 1000
    assert len(ticks_of(events)) > 50
    tick_times = [e["t"] for e in events if "ticks" in e]
    assert tick_times[-1] - tick_times[0] >= 1.8  # 20 s of ticks at 10x; load only slows it


async def test_a_range_outside_the_store_is_closed_with_the_reason(
    tmp_path: Path, synth_store: Path
) -> None:
    async with serving(synth_store) as server:
        root = (
            server.url.replace("http", "ws") + "/kite/history/2020-01-01T09:15/2020-01-01T15:30/1x"
        )
        events = await run_kite_client(tmp_path, root, {NIFTY_FUT: "full"}, 20)
        assert server.stats.rejected["bad_request"] == 1
    close = events[-1]
    assert close["close"] == 1008
    assert "outside the store" in close["reason"]
    assert not ticks_of(events)
