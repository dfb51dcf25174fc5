"""The sink's acks: what the server handed to a sink that died unacknowledged comes back to the
next sink and lands in the archive (an AckAll consumer lost exactly these records)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats

from shriven.bus.options import BusOptions
from shriven.bus.sink import run_sink
from shriven.bus.subjects import MsgId, headers_for, subject_for
from shriven.events import BinanceTrade, encode_record

from .conftest import NatsServer, keyed

N = 60


async def _scenario(url: str, archive: Path) -> None:
    options = BusOptions(urls=(url,), stream="REDELIVER", prefix="redeliver", recorder="rec1")
    # the sink creates its durable consumer on the (empty) stream
    await run_sink(options, archive, durable="d", ack_wait_s=1.0, duration=0.3)

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for seq in range(1, N + 1):
            r = BinanceTrade(1_000 + seq, seq, "BTCUSDT", seq, "1.0", "2.0", seq, seq, False)
            msg_id = MsgId("rec1", 0, "binance", seq)
            await js.publish(
                subject_for(options.prefix, r), encode_record(r), headers=headers_for(msg_id, r)
            )
        # a sink that fetched the first ten and died before storing or acking them
        dead = await js.pull_subscribe("redeliver.>", durable="d", stream="REDELIVER")
        assert len(await dead.fetch(10, timeout=2)) == 10
    finally:
        await nc.close()

    stop = asyncio.Event()

    async def until_whole() -> None:
        for _ in range(100):  # the ten come back after ack_wait (1 s)
            if len(keyed(archive / "rec1" / "ticks")) >= N:
                break
            await asyncio.sleep(0.1)
        stop.set()

    watcher = asyncio.create_task(until_whole())
    await run_sink(options, archive, durable="d", ack_wait_s=1.0, stop=stop, duration=15)
    await watcher


def test_records_a_dead_sink_fetched_unacked_reach_the_archive_from_the_next_sink(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    archive = tmp_path / "archive"
    asyncio.run(_scenario(nats_server.url, archive))
    held = keyed(archive / "rec1" / "ticks")
    assert sorted(seq for _run, _stream, seq in held) == list(range(1, N + 1))
