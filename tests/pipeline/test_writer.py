"""The pipeline without the network: records pushed through the queue end up in the WAL in order,
books and clock-aligned snapshots follow them, and a slow disk makes producers wait, not lose."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from shriven.app.startup import wal_options
from shriven.config import PipelineConfig
from shriven.events import (
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceTrade,
    BookSnapshot,
    KiteTick,
    Record,
    SeqCounter,
    Status,
    StatusKind,
    decode_batch,
)
from shriven.feeds.base import FeedStats
from shriven.pipeline.daemon import Pipeline
from shriven.wal import StoreWriter, read_records


class ListFeed:
    """A feed adapter that pushes a fixed list of records, then idles until cancelled."""

    venue = "test"

    def __init__(self, sink: Pipeline, records: Sequence[Record]) -> None:
        self.stats = FeedStats("test")
        self._sink = sink.queue
        self._records = records
        self.done = asyncio.Event()

    async def run(self) -> None:
        self.stats.connected = True
        for r in self._records:
            await self._sink.put(r)
            self.stats.records += 1
        self.done.set()
        await asyncio.Event().wait()


def kite_ticks(n: int, t0: int) -> list[KiteTick]:
    seq = SeqCounter()
    out = []
    for i in range(n):
        px = 2_500_000 + (i % 50) * 5
        out.append(
            KiteTick(
                t0 + i * 1000,
                seq.next(),
                12_345_602 + (i % 4) * 256,
                "full",
                px,
                bids=((px - 5, 10, 1), (px - 10, 20, 2)),
                asks=((px + 5, 15, 1), (px + 10, 25, 3)),
            )
        )
    return out


def config(tmp_path: Path, **kw: object) -> PipelineConfig:
    base: dict[str, object] = {
        "data_dir": tmp_path / "market",
        "snapshot_interval_secs": 1,
        "wal_segment_size": 256 * 1024,
    }
    base.update(kw)
    return PipelineConfig(**base)  # type: ignore[arg-type]


async def run_until(p: Pipeline, feed: ListFeed, extra_s: float = 0.0) -> None:
    await p.start()
    await asyncio.wait_for(feed.done.wait(), 60)
    if extra_s:
        await asyncio.sleep(extra_s)
    await p.shutdown()


async def test_every_record_reaches_the_wal_once_in_order_between_start_and_stop(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    ticks = kite_ticks(20_000, time.time_ns())
    p = Pipeline(cfg, wal=wal_options(cfg), health_port=None)
    feed = ListFeed(p, ticks)
    p.add_feed(feed)
    await run_until(p, feed)
    assert p.exit_code == 0
    got = list(read_records(cfg.data_dir / "ticks"))
    assert isinstance(got[0], Status) and got[0].kind == StatusKind.STARTED
    assert isinstance(got[-1], Status) and got[-1].kind == StatusKind.STOPPED
    assert got[1:-1] == ticks
    assert p.stats.records_written == len(ticks) + 2
    # Final snapshot: one book per instrument, equal to the last tick of each.
    lob = [r for r in read_records(cfg.data_dir / "lob") if isinstance(r, BookSnapshot)]
    final = {s.instrument: s for s in lob if s.recv_ns == lob[-1].recv_ns}
    assert len(final) == 4
    last = {t.instrument_token: t for t in ticks}
    for token, t in last.items():
        snap = final[str(token)]
        assert snap.bids[0] == (t.bids[0][0] / 100, float(t.bids[0][1]))
        assert snap.asks[-1] == (t.asks[-1][0] / 100, float(t.asks[-1][1]))
    assert (cfg.data_dir / "metadata.json").is_file()


# paced: each record arrives at its stamp, so the one on boundary B comes alone; backlog: all at
# once, so one batch spans B and the recorder must split it after, not before, the record at B.
@pytest.mark.parametrize("paced", [True, False], ids=["paced", "backlog"])
async def test_snapshots_are_aligned_to_the_interval_and_hold_the_books_at_that_instant(
    tmp_path: Path, paced: bool
) -> None:
    cfg = config(tmp_path, snapshot_interval_secs=1)
    p = Pipeline(cfg, wal=wal_options(cfg), health_port=None)
    # A Binance book that changes every 100 ms over ~2.5 s of record times from soon, three of
    # the diffs stamped exactly on a snapshot boundary.
    base = (time.time_ns() // 1_000_000_000 + 2) * 1_000_000_000
    t0 = base - 500_000_000
    recs: list[Record] = [
        BinanceDepthSnapshot(t0, 1, "BTCUSDT", 100, (("10.0", "1"),), (("11.0", "1"),))
    ]
    for i in range(25):
        u = 101 + i
        recs.append(
            BinanceDepth(
                t0 + (i + 1) * 100_000_000,
                i + 2,
                "BTCUSDT",
                u,
                u,
                0,
                ((f"{10.5 + i * 0.01:.2f}", "2"),),
                (),
            )
        )

    class PacedFeed(ListFeed):
        async def run(self) -> None:
            self.stats.connected = True
            for r in self._records:
                delay = (r.recv_ns - time.time_ns()) / 1e9
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._sink.put(r)
            self.done.set()
            await asyncio.Event().wait()

    feed = PacedFeed(p, recs) if paced else ListFeed(p, recs)
    p.add_feed(feed)
    await run_until(p, feed, extra_s=0.5)
    snaps = [r for r in read_records(cfg.data_dir / "lob") if isinstance(r, BookSnapshot)]
    aligned = [s for s in snaps if s.recv_ns % 1_000_000_000 == 0]
    assert len(aligned) >= 2
    on_boundary = {r.recv_ns for r in recs} & {s.recv_ns for s in aligned}
    assert on_boundary, "no diff was stamped exactly on a snapshot boundary"
    for s in aligned:
        # The book at boundary B holds exactly the diffs stamped at or before B.
        applied = [r for r in recs[1:] if r.recv_ns <= s.recv_ns]
        expected_u = applied[-1].last_update_id if applied else 100  # type: ignore[union-attr]
        assert s.update_id == expected_u
        assert len(s.bids) == 1 + len(applied)


class SlowStore(StoreWriter):
    """A real store whose tick appends take a while, as on a slow or busy disk."""

    def append_ticks(self, records: Sequence[Record]) -> int:
        time.sleep(0.02)
        return super().append_ticks(records)


async def test_a_slow_disk_fills_the_queue_and_feeds_wait_without_losing_records(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path, max_queue_size=200, batch_max_records=50)
    ticks = kite_ticks(3_000, time.time_ns())
    p = Pipeline(
        cfg, open_store=lambda: SlowStore(cfg.data_dir, wal_options(cfg)), health_port=None
    )
    feed = ListFeed(p, ticks)
    p.add_feed(feed)
    await run_until(p, feed)
    got = [r for r in read_records(cfg.data_dir / "ticks") if isinstance(r, KiteTick)]
    assert got == ticks
    assert p.queue.stats.waits > 0
    assert p.queue.stats.dropped == 0
    assert b"shriven_queue_full_waits_total" in p.metrics.render()
    assert p.queue.stats.high_water >= 200  # it filled to its bound


async def test_records_the_wal_or_a_book_cannot_take_are_counted_marked_and_the_recorder_goes_on(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    t0 = time.time_ns()
    good = kite_ticks(10, t0)
    # Past the schema only through a bug: an id beyond 64 bits the WAL cannot encode, and a Kite
    # level with no price that the book cannot divide.
    unencodable = BinanceTrade(t0 + 5, 1, "BTCUSDT", 2**64, "1", "1", 1, 1, True)
    no_price = KiteTick(t0 + 6, 99, 12_345_602, "full", 5, bids=((None, 1, 1),))  # type: ignore[arg-type]
    later = kite_ticks(10, t0 + 10**6)
    p = Pipeline(cfg, wal=wal_options(cfg), health_port=None)
    feed = ListFeed(p, [*good, unencodable, no_price, *later])
    p.add_feed(feed)
    await run_until(p, feed)
    assert p.exit_code == 0
    got = list(read_records(cfg.data_dir / "ticks"))
    assert unencodable not in got
    assert all(t in got for t in [*good, *later])
    assert no_price in got  # the raw record is kept; only the books skipped it
    markers = [r for r in got if isinstance(r, Status) and r.kind == StatusKind.REJECTED]
    assert len(markers) == 2
    assert "cannot encode (BinanceTrade" in markers[0].detail
    assert "books could not apply a KiteTick" in markers[1].detail
    assert p.stats.recorder_errors == {"wal_encode": 1, "books": 1}
    text = p.metrics.render()
    assert b'shriven_recorder_errors_total{stage="wal_encode"} 1.0' in text
    assert b'shriven_recorder_errors_total{stage="books"} 1.0' in text


async def test_taps_see_every_batch_in_wal_order_and_durable_ones_only_after_an_fsync(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path, fsync_policy="interval", fsync_interval_ms=20)
    ticks = kite_ticks(5_000, time.time_ns())
    p = Pipeline(cfg, wal=wal_options(cfg), health_port=None)
    written: list[Record] = []
    durable: list[Record] = []
    syncs_when_written: dict[int, int] = {}
    late_fsyncs: list[int] = []

    def on_written(batch: Sequence[Record]) -> None:
        syncs_when_written[id(batch)] = p.stats.syncs
        written.extend(batch)

    def on_durable(batch: Sequence[Record]) -> None:
        if p.stats.syncs <= syncs_when_written[id(batch)]:
            late_fsyncs.append(len(batch))
        durable.extend(batch)

    def broken(batch: Sequence[Record]) -> None:
        raise RuntimeError("a tap with a bug")

    payloads: list[bytes] = []
    p.add_tap(on_written, durable=False)
    p.add_tap(broken, durable=True)
    p.add_tap(on_durable, durable=True)
    p.add_payload_tap(payloads.append)  # the live server's process is fed these
    feed = ListFeed(p, ticks)
    p.add_feed(feed)
    await run_until(p, feed)
    assert p.exit_code == 0
    on_disk = list(read_records(cfg.data_dir / "ticks"))
    assert written == on_disk == durable
    assert [r for payload in payloads for r in decode_batch(payload)] == on_disk
    assert late_fsyncs == []  # no batch reached a durable tap before an fsync after its write
    assert p.stats.recorder_errors["tap"] >= 1


async def test_the_snapshot_tap_sees_each_round_once_it_is_in_the_lob_wal(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    p = Pipeline(cfg, wal=wal_options(cfg), health_port=None)
    rounds: list[list[Record]] = []
    unwritten: list[int] = []

    def on_snapshots(snaps: Sequence[Record]) -> None:
        on_disk = list(read_records(cfg.data_dir / "lob"))
        if on_disk[-len(snaps) :] != list(snaps):
            unwritten.append(len(snaps))
        rounds.append(list(snaps))

    p.add_snapshot_tap(on_snapshots)
    feed = ListFeed(p, kite_ticks(500, time.time_ns()))
    p.add_feed(feed)
    await run_until(p, feed)
    assert p.exit_code == 0
    assert rounds and unwritten == []  # at least the final round, each after its write
    assert [s for r in rounds for s in r] == list(read_records(cfg.data_dir / "lob"))
