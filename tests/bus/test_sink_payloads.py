"""The sink stores payloads as bytes: one that is not the record its message id names is
refused on its own (counted, acknowledged, never in a frame), and the rest are stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats

from shriven.bus.options import BusOptions
from shriven.bus.sink import SinkStats, run_sink
from shriven.bus.subjects import MsgId, headers_for, subject_for
from shriven.events import BinanceTrade, encode_record
from shriven.wal import WalReader

from .conftest import NatsServer


def _trade(seq: int) -> BinanceTrade:
    return BinanceTrade(1_000 + seq, seq, "BTCUSDT", seq, "1.0", "2.0", seq, seq, False)


async def _scenario(url: str, archive: Path) -> tuple[SinkStats, SinkStats]:
    options = BusOptions(urls=(url,), stream="PAYLOADS", prefix="payloads", recorder="rec1")
    await run_sink(options, archive, durable="d", duration=0.3)  # creates the consumer
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()

        async def send(seq: int, payload: bytes, msg_id: bool = True) -> None:
            r = _trade(seq)
            headers = headers_for(MsgId("rec1", 0, "binance", seq), r)
            if not msg_id:
                del headers["Nats-Msg-Id"]
            await js.publish(subject_for(options.prefix, r), payload, headers=headers)

        for seq in (1, 2, 3):
            await send(seq, encode_record(_trade(seq)))
        await send(4, encode_record(_trade(4))[:-3])  # cut short
        await send(5, encode_record(_trade(6)))  # another record's payload
        await send(7, encode_record(_trade(7)), msg_id=False)
        await send(8, encode_record(_trade(8)))
    finally:
        await nc.close()
    first, again = SinkStats(), SinkStats()
    stop = asyncio.Event()

    async def until_all_seen() -> None:
        for _ in range(100):
            if first.received >= 7:
                break
            await asyncio.sleep(0.05)
        stop.set()

    watcher = asyncio.create_task(until_all_seen())
    await run_sink(options, archive, durable="d", stop=stop, stats=first, duration=15)
    await watcher
    await run_sink(options, archive, durable="d", stats=again, duration=1.0)
    return first, again


def test_a_payload_that_is_not_its_record_is_refused_and_the_rest_stored(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    archive = tmp_path / "archive"
    first, again = asyncio.run(_scenario(nats_server.url, archive))
    assert (first.received, first.refused, first.stored) == (7, 3, 4)
    assert again.received == 0  # refused messages were acknowledged too
    stored = list(WalReader(archive / "rec1" / "ticks", strict=True).records())
    assert stored == [_trade(seq) for seq in (1, 2, 3, 8)]
