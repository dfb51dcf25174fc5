"""/health and /metrics of a running pipeline: content, overall state and HTTP status codes."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp
import pytest

from shriven.app.startup import wal_options
from shriven.config import PipelineConfig
from shriven.events import BinanceDepth, BinanceDepthSnapshot, BinanceTrade, Record, SeqCounter
from shriven.feeds.base import FeedStats
from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.health import evaluate
from shriven.wal import StoreWriter, read_records


class ManualFeed:
    """A feed whose connection state the test sets; it pushes what it is handed."""

    def __init__(self, venue: str, sink: Pipeline) -> None:
        self.venue = venue
        self.stats = FeedStats(venue)
        self.sink = sink.queue
        self.seq = SeqCounter()

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def trade(self) -> None:
        r = BinanceTrade(time.time_ns(), self.seq.next(), "BTCUSDT", 1, "10.5", "1", 1, 1, False)
        self.stats.messages += 1
        self.stats.records += 1
        self.stats.last_message_ns = r.recv_ns
        await self.sink.put(r)


class FlakyDiskStore(StoreWriter):
    """A real store on a disk that is 'full' while ``FULL`` is set."""

    FULL = False

    def append_ticks(self, records: Sequence[Record]) -> int:
        if FlakyDiskStore.FULL:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().append_ticks(records)


async def get(url: str) -> tuple[int, str, dict[str, object] | None]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        body = await resp.text()
        data = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body, data


async def wait_for(cond, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def make(
    tmp_path: Path, free_bytes: Callable[[], int] | None = None, **kw: object
) -> tuple[Pipeline, ManualFeed, PipelineConfig]:
    cfg = PipelineConfig(data_dir=tmp_path / "market", **kw)  # type: ignore[arg-type]
    p = Pipeline(
        cfg,
        open_store=lambda: FlakyDiskStore(cfg.data_dir, wal_options(cfg)),
        health_port=0,
        free_bytes=free_bytes,
    )
    feed = ManualFeed("binance", p)
    p.add_feed(feed)
    return p, feed, cfg


async def test_health_is_ok_with_a_connected_feed_and_lists_every_part(tmp_path: Path) -> None:
    p, feed, _cfg = make(tmp_path)
    await p.start()
    try:
        feed.stats.connected = True
        await feed.trade()
        await wait_for(lambda: p.stats.records_written >= 2)
        status, _body, data = await get(p.health_url + "/health")
        assert status == 200
        assert data is not None
        assert data["status"] == "ok", data["problems"]
        binance = data["feeds"]["binance"]  # type: ignore[index]
        assert binance["connected"] is True and binance["market_open"] is True
        assert binance["last_message_age_s"] is not None
        assert data["queue"]["capacity"] == 100_000  # type: ignore[index]
        assert data["wal"]["writable"] is True  # type: ignore[index]
        assert data["wal"]["disk_free_bytes"] > 0  # type: ignore[index]
    finally:
        await p.shutdown()


async def test_a_disconnected_feed_is_degraded_and_no_feed_at_all_is_failing(
    tmp_path: Path,
) -> None:
    p, _feed, _cfg = make(tmp_path, stale_feed_secs=0.5)
    await p.start()
    try:
        status, _body, data = await get(p.health_url + "/health")
        assert status == 200 and data is not None
        assert data["status"] == "degraded"
        assert "binance disconnected" in data["problems"]  # type: ignore[operator]
        await asyncio.sleep(0.7)  # nothing connected for longer than stale_feed_secs
        status, _body, data = await get(p.health_url + "/health")
        assert status == 503 and data is not None
        assert data["status"] == "failing"
        assert "no feed connected" in data["problems"]  # type: ignore[operator]
        assert data["feeds"]["binance"]["stale"] is True  # type: ignore[index]
    finally:
        await p.shutdown()


async def test_a_short_reconnect_after_the_start_window_is_degraded_never_failing(
    tmp_path: Path,
) -> None:
    """Polls landing inside sub-second reconnects, long after start: the venue cut the
    connection every few seconds while data flowed. Only a feed-less stretch longer than
    stale_feed_secs is failing."""
    p, feed, _cfg = make(tmp_path, stale_feed_secs=0.5)
    await p.start()
    try:
        feed.stats.connected = True
        await asyncio.sleep(0.7)  # uptime now beyond stale_feed_secs
        statuses = []
        for _ in range(10):
            feed.stats.connected = False  # the venue cut it; reconnecting
            await feed.trade()
            status, _body, data = await get(p.health_url + "/health")
            assert data is not None
            statuses.append((status, data["status"], data["problems"]))
            feed.stats.connected = True
            await asyncio.sleep(0.05)
        assert all(s == 200 and state == "degraded" for s, state, _ in statuses), statuses
        assert not any("no feed connected" in problems for *_, problems in statuses)
        feed.stats.connected = False
        await asyncio.sleep(0.7)  # now down for longer than stale_feed_secs
        status, _body, data = await get(p.health_url + "/health")
        assert status == 503 and data is not None
        assert "no feed connected" in data["problems"]  # type: ignore[operator]
    finally:
        await p.shutdown()


async def test_a_full_disk_is_failing_then_recovers_without_losing_the_held_records(
    tmp_path: Path,
) -> None:
    p, feed, cfg = make(tmp_path)
    await p.start()
    try:
        feed.stats.connected = True
        await wait_for(lambda: p.stats.records_written >= 1)
        FlakyDiskStore.FULL = True
        for _ in range(5):
            await feed.trade()
        await wait_for(lambda: p.stats.wal_errors >= 1)
        status, _body, data = await get(p.health_url + "/health")
        assert status == 503 and data is not None
        assert "WAL not writable" in data["problems"]  # type: ignore[operator]
        assert "No space left" in str(data["wal"]["error"])  # type: ignore[index]
        FlakyDiskStore.FULL = False
        await wait_for(lambda: p.writer.wal_ok and p.stats.records_written >= 6)
        status, _body, data = await get(p.health_url + "/health")
        assert status == 200
    finally:
        FlakyDiskStore.FULL = False
        await p.shutdown()
    trades = [r for r in read_records(cfg.data_dir / "ticks") if isinstance(r, BinanceTrade)]
    assert [t.seq for t in trades] == [1, 2, 3, 4, 5]


def full_disk_under(monkeypatch: pytest.MonkeyPatch, root: Path) -> Callable[[bool], None]:
    """While set full, every os.write/os.writev to a file under ``root`` fails with ENOSPC after
    writing nothing, as the WAL writer's system calls see a full disk (other files are spared)."""
    full = [False]
    real_write, real_writev = os.write, os.writev

    def on_store(fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").startswith(str(root))
        except OSError:
            return False

    def write(fd: int, data: bytes) -> int:
        if full[0] and on_store(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    def writev(fd: int, buffers: Sequence[bytes]) -> int:
        if full[0] and on_store(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_writev(fd, buffers)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "writev", writev)
    return lambda value: full.__setitem__(0, value)


async def recording_into_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Pipeline, Callable[[bool], None]]:
    """A started pipeline that wrote a record, then met a full disk: the write failed, reopening
    the store failed too (no room for a new segment), and later retries found no open WAL."""
    cfg = PipelineConfig(data_dir=tmp_path / "market")  # type: ignore[call-arg]
    p = Pipeline(cfg, wal=wal_options(cfg), health_port=0)
    feed = ManualFeed("binance", p)
    p.add_feed(feed)
    set_full = full_disk_under(monkeypatch, tmp_path)
    await p.start()
    try:
        feed.stats.connected = True
        await wait_for(lambda: p.stats.records_written >= 1)
        set_full(True)
        await feed.trade()
        await wait_for(lambda: p.stats.wal_errors >= 3)
    except BaseException:
        set_full(False)
        await p.shutdown()
        raise
    return p, set_full


async def test_a_full_disk_keeps_naming_its_root_cause_until_a_write_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p, set_full = await recording_into_a_full_disk(tmp_path, monkeypatch)
    try:
        status, _body, data = await get(p.health_url + "/health")
        assert status == 503 and data is not None
        error = str(data["wal"]["error"])  # type: ignore[index]
        assert "the disk is full" in error and "segment_" in error and "at byte" in error, error
        assert "not open" in str(data["wal"]["last_error"])  # type: ignore[index]
        set_full(False)
        await wait_for(lambda: p.writer.wal_ok and p.stats.records_written >= 2)
        status, _body, data = await get(p.health_url + "/health")
        assert status == 200 and data is not None
        assert data["wal"]["error"] is None  # type: ignore[index]
    finally:
        set_full(False)
        await p.shutdown()


async def test_a_disk_still_full_at_shutdown_names_the_disk_in_the_exit_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Giving up at shutdown names the root cause (the full disk), not the last retry's
    'the tick WAL is not open'."""
    from structlog.testing import capture_logs

    p, set_full = await recording_into_a_full_disk(tmp_path, monkeypatch)
    try:
        with capture_logs() as logs:
            await p.shutdown()
    finally:
        set_full(False)
    assert p.exit_code == 1
    (failed,) = [e for e in logs if e["event"] == "writer failed"]
    assert "gave up writing" in failed["error"], failed
    assert "the disk is full" in failed["error"] and "at byte" in failed["error"], failed


async def test_metrics_are_prometheus_text_with_the_pipeline_and_feed_series(
    tmp_path: Path,
) -> None:
    p, feed, _cfg = make(tmp_path)
    await p.start()
    try:
        feed.stats.connected = True
        feed.stats.count_error("bad_json")
        await feed.trade()
        await wait_for(lambda: p.stats.records_written >= 2 and p.stats.syncs >= 1)
        status, body, _ = await get(p.health_url + "/metrics")
        assert status == 200
        lines = body.splitlines()
        for needle in (
            'shriven_feed_messages_total{venue="binance"} 1.0',
            'shriven_feed_errors_total{kind="bad_json",venue="binance"} 1.0',
            'shriven_feed_connected{venue="binance"} 1.0',
            "shriven_queue_depth ",
            "shriven_queue_capacity 100000.0",
            'shriven_records_written_total{stream="binance"} 1.0',
            "shriven_books ",
            "shriven_disk_free_bytes ",
        ):
            assert any(line.startswith(needle) for line in lines), needle
        for hist in (
            "shriven_batch_records_bucket",
            'shriven_wal_write_seconds_bucket{le="0.001",wal="ticks"}',
            "shriven_receive_to_durable_seconds_count",
            "shriven_wal_fsync_seconds_bucket",
        ):
            assert any(line.startswith(hist) for line in lines), hist
        assert "# TYPE shriven_snapshot_seconds histogram" in body
    finally:
        await p.shutdown()


async def test_the_console_status_line_sums_up_state_feeds_queue_and_disk(tmp_path: Path) -> None:
    p, feed, _cfg = make(tmp_path)
    await p.start()
    try:
        feed.stats.connected = True
        await feed.trade()
        await wait_for(lambda: p.stats.records_written >= 2)
        line = p.monitor.status_line()
    finally:
        await p.shutdown()
    parts = line.split(" | ")
    assert parts[0] == "ok"
    assert parts[1].startswith("binance up ")
    assert "queue 0/100000" in parts
    assert any(x.startswith("written 2 (") for x in parts)
    assert parts[-1].startswith("disk ") and parts[-1].endswith(" free")


GiB = 1024**3
MiB = 1024**2


async def test_disk_thresholds_free_below_2_gib_is_degraded_below_256_mib_failing(
    tmp_path: Path,
) -> None:
    free = [10 * GiB]
    cfg = PipelineConfig(data_dir=tmp_path / "market")
    p = Pipeline(cfg, wal=wal_options(cfg), health_port=0, free_bytes=lambda: free[0])
    feed = ManualFeed("binance", p)
    p.add_feed(feed)
    await p.start()
    try:
        feed.stats.connected = True
        expected = [
            (10 * GiB, 200, "ok", None),
            (2 * GiB, 200, "ok", None),
            (2 * GiB - 1, 200, "degraded", "disk space low"),
            (256 * MiB, 200, "degraded", "disk space low"),
            (256 * MiB - 1, 503, "failing", "disk nearly full"),
        ]
        for value, code, state, problem in expected:
            free[0] = value
            status, _body, data = await get(p.health_url + "/health")
            assert data is not None
            assert (status, data["status"]) == (code, state), value
            assert data["problems"] == ([problem] if problem else []), value
            assert data["wal"]["disk_free_bytes"] == value  # type: ignore[index]
        _s, text, _d = await get(p.health_url + "/metrics")
        assert "shriven_disk_free_bytes 2.68435455e+08" in text, text[-400:]
    finally:
        await p.shutdown()


async def test_health_reports_the_queue_high_water_after_the_writer_drained_it(
    tmp_path: Path,
) -> None:
    p, feed, _cfg = make(tmp_path)
    await p.start()
    try:
        feed.stats.connected = True
        written = p.stats.records_written
        for _ in range(50):  # no await yields to the writer: the queue holds all 50 at once
            p.queue.put_nowait(
                BinanceTrade(time.time_ns(), feed.seq.next(), "BTCUSDT", 1, "1", "1", 1, 1, False)
            )
        await wait_for(lambda: p.stats.records_written >= written + 50)
        _status, _body, data = await get(p.health_url + "/health")
        assert data is not None
        assert data["queue"]["depth"] == 0  # type: ignore[index]
        assert 50 <= data["queue"]["high_water"] <= 100  # type: ignore[index,operator]
    finally:
        await p.shutdown()


def test_a_queue_more_than_80_percent_full_is_degraded(tmp_path: Path) -> None:
    cfg = PipelineConfig(data_dir=tmp_path / "market", max_queue_size=10)
    p = Pipeline(cfg, wal=wal_options(cfg), health_port=None, free_bytes=lambda: 10 * GiB)
    feed = ManualFeed("binance", p)
    feed.stats.connected = True
    p.add_feed(feed)
    for i in range(9):
        rec = BinanceTrade(time.time_ns(), i + 1, "BTCUSDT", i, "1", "1", 1, 1, False)
        p.queue.put_nowait(rec)
        report = evaluate(p.sources)
        # 8 of 10 is not above 80%; 9 is
        assert ("queue nearly full" in report["problems"]) == (i + 1 > 8), i  # type: ignore[operator]
    assert report["status"] == "degraded"


async def test_a_crossed_book_is_reported_and_clears_when_uncrossed(tmp_path: Path) -> None:
    p, feed, _cfg = make(tmp_path, free_bytes=lambda: 10 * GiB)
    await p.start()
    try:
        feed.stats.connected = True
        now = time.time_ns()
        crossed = BinanceDepthSnapshot(now, 1, "BTCUSDT", 10, (("11.0", "1"),), (("10.0", "1"),))
        await feed.sink.put(crossed)
        await wait_for(lambda: p.stats.crossed_now == 1)
        _s, _b, data = await get(p.health_url + "/health")
        assert data is not None and data["status"] == "degraded"
        assert data["problems"] == ["1 book(s) crossed"]
        assert data["books"]["crossed_now"] == 1  # type: ignore[index]
        # a diff removing the crossing bid: no longer crossed, health ok again
        await feed.sink.put(BinanceDepth(now + 1, 2, "BTCUSDT", 11, 11, 0, (("11.0", "0"),), ()))
        await wait_for(lambda: p.stats.crossed_now == 0)
        _s, _b, data = await get(p.health_url + "/health")
        assert data is not None and data["status"] == "ok", data
    finally:
        await p.shutdown()


class CrashOnceFeed(ManualFeed):
    """A feed adapter whose first run dies of a bug some input met."""

    runs = 0

    async def run(self) -> None:
        self.runs += 1
        if self.runs == 1:
            raise RuntimeError("a bug met by some input")
        self.stats.connected = True
        await asyncio.Event().wait()


async def test_a_feed_task_that_dies_is_restarted_and_health_reports_it(tmp_path: Path) -> None:
    cfg = PipelineConfig(data_dir=tmp_path / "market")
    p = Pipeline(cfg, wal=wal_options(cfg), health_port=0, free_bytes=lambda: 10 * GiB)
    feed = CrashOnceFeed("binance", p)
    p.add_feed(feed)
    await p.start()
    try:
        await wait_for(lambda: feed.runs == 2 and feed.stats.connected)
        _s, _b, data = await get(p.health_url + "/health")
        assert data is not None and data["status"] == "degraded"
        assert data["problems"] == ["binance feed task restarted after an internal error"]
        assert data["feeds"]["binance"]["task_restarts"] == 1  # type: ignore[index]
        _s, text, _d = await get(p.health_url + "/metrics")
        assert 'shriven_feed_task_restarts_total{venue="binance"} 1.0' in text
    finally:
        await p.shutdown()
    assert p.exit_code == 0
