"""The bounded queue: order, batching, waiting for room, dropping with a gap marker, shutdown."""

from __future__ import annotations

import asyncio
import json

from shriven.events import BinanceTrade, KiteTick, Status, StatusKind
from shriven.pipeline.queue import RecordQueue


def tick(seq: int) -> KiteTick:
    return KiteTick(1_000 + seq, seq, 256265, "ltp", 2_500_000 + seq)


def trade(seq: int) -> BinanceTrade:
    return BinanceTrade(2_000 + seq, seq, "BTCUSDT", seq, "100.0", "1.0", 1, 1, False)


async def test_batches_come_out_in_put_order_and_bounded_in_size() -> None:
    q = RecordQueue(100)
    for i in range(1, 26):
        await q.put(tick(i))
    first = await q.get_batch(10, 0.001, 0.1)
    second = await q.get_batch(100, 0.001, 0.1)
    assert [r.seq for r in first] == list(range(1, 11))
    assert [r.seq for r in second] == list(range(11, 26))
    assert await q.get_batch(10, 0.001, 0.01) == []


async def test_get_batch_waits_for_the_first_record() -> None:
    q = RecordQueue(10)

    async def later() -> None:
        await asyncio.sleep(0.05)
        await q.put(tick(1))

    task = asyncio.create_task(later())
    batch = await q.get_batch(5, 0.001, 5.0)
    await task
    assert [r.seq for r in batch] == [1]


async def test_wait_policy_blocks_producers_until_the_writer_takes_and_loses_nothing() -> None:
    q = RecordQueue(5, "wait")
    n = 200

    async def produce() -> None:
        for i in range(1, n + 1):
            await q.put(tick(i))

    producer = asyncio.create_task(produce())
    got: list[int] = []
    for _ in range(1000):
        if len(got) == n:
            break
        await asyncio.sleep(0.001)  # a slow consumer
        got.extend(r.seq for r in q.take(3))
    await asyncio.wait_for(producer, 10)
    got.extend(r.seq for r in q.take(100))
    assert got == list(range(1, n + 1))
    assert q.stats.waits > 0
    assert q.stats.full_episodes >= 1
    assert q.stats.dropped == 0
    assert q.stats.high_water <= 5


async def test_high_water_is_the_deepest_the_queue_has_been_after_the_writer_empties_it() -> None:
    q = RecordQueue(100)
    for i in range(1, 41):
        await q.put(tick(i))
    assert len(q.take(100)) == 40
    for i in range(41, 51):
        await q.put(tick(i))
    q.take(3)
    assert q.stats.high_water == 40
    for i in range(51, 91):
        await q.put(tick(i))  # 7 left + 40 = 47 deep
    q.take(100)
    assert q.stats.high_water == 47


async def test_drop_policy_counts_drops_and_queues_a_gap_marker_when_room_returns() -> None:
    q = RecordQueue(3, "drop")
    for i in range(1, 11):
        await q.put(trade(i))  # 1..3 fit, 4..10 dropped
    assert q.stats.dropped == 7
    assert q.stats.dropped_by_stream == {"binance": 7}
    assert [r.seq for r in q.take(10)] == [1, 2, 3]
    await q.put(trade(11))
    marker, after = q.take(10)
    assert isinstance(marker, Status)
    assert marker.kind == StatusKind.DROPPED and marker.venue == "system"
    assert marker.instrument == "binance"
    detail = json.loads(marker.detail)
    assert detail["dropped"] == 7 and detail["first_seq"] == 4 and detail["last_seq"] == 10
    assert after.seq == 11


async def test_close_releases_waiting_producers_and_keeps_their_records() -> None:
    q = RecordQueue(2, "wait")
    await q.put(tick(1))
    await q.put(tick(2))
    blocked = asyncio.create_task(q.put(tick(3)))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    q.close()
    blocked.cancel()  # shutdown cancels adapters right after closing the queue
    await asyncio.gather(blocked, return_exceptions=True)
    await q.put(tick(4))  # adapters stopping still write their last markers
    assert [r.seq for r in q.take(10)] == [1, 2, 3, 4]
    q.finish()
    assert await q.get_batch(10, 5.0, 5.0) == []  # finished and empty: returns at once


async def test_drop_policy_never_drops_status_markers() -> None:
    q = RecordQueue(1, "drop")
    await q.put(trade(1))
    await q.put(Status(5, 1, "binance", StatusKind.GAP, "BTCUSDT", "x"))
    await q.put(trade(2))
    got = q.take(10)
    assert [type(r).__name__ for r in got] == ["BinanceTrade", "Status"]
    assert q.stats.dropped == 1


async def test_high_water_is_the_deepest_the_queue_has_been_not_what_a_take_left() -> None:
    q = RecordQueue(100)
    for i in range(1, 31):
        await q.put(tick(i))
    assert len(q.take(50)) == 30
    for i in range(31, 41):
        await q.put(tick(i))
    assert len(q.take(4)) == 4
    assert q.stats.high_water == 30


async def test_a_record_kept_over_the_bound_splits_the_drop_run_so_markers_hold_only_lost() -> None:
    q = RecordQueue(3, "drop")
    for i in range(1, 7):
        await q.put(trade(i))  # 1..3 fit, 4..6 dropped
    await q.put(Status(5, 7, "binance", StatusKind.GAP, "BTCUSDT", "x"))  # kept, seq 7
    for i in range(8, 10):
        await q.put(trade(i))  # dropped
    assert [r.seq for r in q.take(10)] == [1, 2, 3, 7]
    await q.put(trade(10))
    *markers, after = q.take(10)
    runs = [json.loads(m.detail) for m in markers if isinstance(m, Status)]
    assert [(r["first_seq"], r["last_seq"], r["dropped"]) for r in runs] == [(4, 6, 3), (8, 9, 2)]
    assert after.seq == 10
    assert q.stats.drop_markers == 2


async def test_put_many_with_room_queues_all_in_order_and_wakes_the_writer() -> None:
    q = RecordQueue(10)
    waiting = asyncio.create_task(q.get_batch(4, 5.0, 5.0))
    await asyncio.sleep(0)
    await q.put_many([tick(i) for i in range(1, 5)])
    batch = await asyncio.wait_for(waiting, 1.0)
    assert [r.seq for r in batch] == [1, 2, 3, 4]
    assert q.stats.put == 4


async def test_put_many_past_the_bound_drops_by_policy_as_puts_would() -> None:
    q = RecordQueue(3, "drop")
    await q.put_many([tick(i) for i in range(1, 6)])  # 1..3 fit, 4 and 5 are dropped
    assert q.stats.dropped == 2
    assert [r.seq for r in q.take(10)] == [1, 2, 3]
    await q.put_many([tick(6)])  # room again: the marker comes first
    marker, after = q.take(10)
    assert marker.kind == StatusKind.DROPPED and json.loads(marker.detail)["dropped"] == 2
    assert after.seq == 6


async def test_at_the_soft_limit_producers_wait_for_the_next_take_so_the_depth_stays_bounded() -> (
    None
):
    # Without it a writer that falls behind (a slow fsync, a pause) lets every record received
    # meanwhile queue up, and the allocator keeps that high water for good.
    q = RecordQueue(1_000, "wait", soft_limit=10)
    n = 300

    async def produce() -> None:
        for i in range(1, n + 1):
            await q.put(tick(i))

    producer = asyncio.create_task(produce())
    got: list[int] = []
    deepest = 0
    for _ in range(2_000):
        if len(got) == n:
            break
        await asyncio.sleep(0.001)  # a slow writer
        deepest = max(deepest, len(q))
        got.extend(r.seq for r in q.take(1_000))
    await asyncio.wait_for(producer, 10)
    assert got == list(range(1, n + 1))
    assert deepest <= 10 and q.stats.high_water <= 10
    assert q.stats.paced > 0 and q.stats.paced_seconds > 0
    assert q.stats.waits == 0 and q.stats.full_episodes == 0  # pacing is not a full queue


async def test_the_drop_policy_never_paces_and_close_releases_paced_producers() -> None:
    dropping = RecordQueue(1_000, "drop", soft_limit=10)
    for i in range(1, 101):  # no writer: nothing may wait
        await asyncio.wait_for(dropping.put(tick(i)), 1)
    assert len(dropping) == 100 and dropping.stats.paced == 0

    q = RecordQueue(1_000, "wait", soft_limit=2)
    await q.put(tick(1))
    paced = asyncio.create_task(q.put(tick(2)))
    await asyncio.sleep(0.01)
    assert not paced.done() and len(q) == 2  # queued, then waiting for a take
    q.close()
    await asyncio.wait_for(paced, 1)
    assert [r.seq for r in q.take(10)] == [1, 2]


async def test_put_many_paces_at_the_soft_limit_as_puts_do() -> None:
    # a Kite message's ticks go through put_many: past the soft limit it must wait for a take
    q = RecordQueue(1_000, "wait", soft_limit=10)
    paced = asyncio.create_task(q.put_many([tick(i) for i in range(1, 13)]))
    await asyncio.sleep(0.01)
    assert not paced.done() and len(q) == 12 and q.stats.paced == 1
    assert [r.seq for r in q.take(100)] == list(range(1, 13))
    await asyncio.wait_for(paced, 1)
