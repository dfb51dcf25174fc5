"""The fast-ingest wire part: reply subjects and the server's answers (as nats-server 2.15 sends
them), and the publisher on a real server in both modes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
from nats.js.api import StreamConfig

from shriven.bus import fastingest as fi
from shriven.bus.options import BusOptions
from shriven.bus.publisher import Publisher
from shriven.events import BinanceTrade, BookSnapshot, Record, Status

from .conftest import NatsServer


def test_a_reply_subject_names_its_batch_and_is_recognised() -> None:
    prefix = fi.reply_prefix("_INBOX.abc", "b1")
    subject = fi.reply_subject(prefix, 7, fi.ADD)
    assert subject == "_INBOX.abc.b1.1000.fail.7.1.$FI"
    assert fi.batch_of(subject) == "b1"
    assert fi.batch_of("_INBOX.abc.17") is None  # a per-record ack


def test_server_answers_are_read_as_acks_failures_and_ends() -> None:
    assert fi.parse_reply(b'{"type":"ack","seq":500,"msgs":500}') == fi.Reply(fi.ACK, 500)
    gap = fi.parse_reply(b'{"type":"gap","last_seq":8,"seq":9}')
    assert gap.kind == fi.FAILED and "expected 8, got 9" in gap.text
    err = fi.parse_reply(b'{"error":{"code":400,"description":"batch publish ID unknown"}}')
    assert err == fi.Reply(fi.FAILED, 0, "batch publish ID unknown")
    end = fi.parse_reply(b'{"stream":"F","seq":7,"batch":"b1","count":7}')
    assert end == fi.Reply(fi.ENDED, 7)
    assert fi.parse_reply(b"not json").kind == fi.FAILED


def _run(n: int) -> list[Record]:
    out: list[Record] = [Status(1_000, 1, "system", "started")]
    out += [
        BinanceTrade(1_000 + i, i, "BTCUSDT", i, "1.0", "2.0", i, i, False) for i in range(1, n)
    ]
    return out


async def _publish(url: str, data: Path, stream: str, allow_batched: bool, n: int) -> tuple:
    nc = await nats.connect(url)
    js = nc.jetstream()
    prefix = stream.lower()
    await js.add_stream(
        StreamConfig(name=stream, subjects=[f"{prefix}.>"], allow_batched=allow_batched or None)
    )
    p = Publisher(BusOptions(urls=(url,), stream=stream, prefix=prefix, recorder="r"), data)
    task = asyncio.create_task(p.run())
    records = _run(n)
    p.tap(records[: n // 2])
    p.tap(records[n // 2 :])
    for _ in range(300):
        if p.position.published >= n:
            break
        await asyncio.sleep(0.05)
    fast = p.health()[0]["fast_ingest"]
    await p.close()
    task.cancel()
    held = (await js.stream_info(stream)).state.messages
    ids = set()
    sub = await js.subscribe(f"{prefix}.>", ordered_consumer=True)
    for _ in range(held):
        msg = await sub.next_msg(timeout=5)
        ids.add(msg.headers["Nats-Msg-Id"])
    await nc.close()
    return fast, p.position.published, held, ids


def test_the_publisher_sends_each_record_once_in_batches_or_acked_one_by_one(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    n = 1234  # not a multiple of the flow: the tail is acked by the batch's end
    for stream, batched in (("FASTONE", True), ("SLOWONE", False)):
        fast, published, held, ids = asyncio.run(
            _publish(nats_server.url, tmp_path / stream, stream, batched, n)
        )
        assert fast is batched
        assert published == held == n
        assert ids == {"r:1000:system:1"} | {f"r:1000:binance:{i}" for i in range(1, n)}


def test_book_snapshots_dropped_with_an_overflowing_buffer_do_not_count_as_lag(
    tmp_path: Path,
) -> None:
    # catch-up reads the tick WAL only: dropped snapshots are never sent, so counting them
    # kept lag_records above 0 until the next round was acknowledged (a minute later)
    options = BusOptions(urls=("nats://127.0.0.1:1",), recorder="r", buffer_records=2)
    p = Publisher(options, tmp_path)
    p.tap([Status(1_000, 1, "system", "started")])
    p.snapshot_tap(
        [BookSnapshot(2_000, i, "binance", "BTCUSDT", i, ((1.0, 1.0),), ()) for i in (1, 2, 3)]
    )
    assert p.stats.buffer_overflows == 1
    assert p.health()[0]["lag_records"] == 1  # the started marker, which catch-up will send
