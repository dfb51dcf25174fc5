"""`run --serve`'s child process, driven the way the recorder drives it (its record and payload
taps, the recorder's books), without a recorder: what a (re)started child is handed, where it
logs, and the child that falls too far behind."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import structlog

from shriven.book import BookKeeper
from shriven.events import (
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    KiteTick,
    Record,
    SeqCounter,
    encode_batch,
)
from shriven.feeds.connection import Backoff
from shriven.logging import configure_logging
from shriven.serve import ServeOptions
from shriven.serve.process import ServeProcess

from .live import wait_for

VENUE = "binance-usdm"


@pytest.fixture
def _logging_restored() -> AsyncIterator[None]:
    yield
    structlog.reset_defaults()
    logging.basicConfig(force=True, level=logging.WARNING)


@asynccontextmanager
async def child(tmp_path: Path, books: BookKeeper, **kwargs: int) -> AsyncIterator[ServeProcess]:
    server = ServeProcess(
        ServeOptions(port=0),
        tmp_path,
        "UTC",
        lambda: books.snapshots(time.time_ns(), SeqCounter()),
        backoff=Backoff(0.2, 0.4),
        **kwargs,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def hand(server: ServeProcess, books: BookKeeper, batch: list[Record]) -> None:
    """What the recorder does with a written batch: its books, then the taps."""
    books.apply_all(batch)
    server.record_tap(batch)
    server.tap(encode_batch(batch))


async def depth(url: str) -> dict:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{url}/{VENUE}/fapi/v1/depth", params={"symbol": "BTCUSDT"}) as r,
    ):
        assert r.status == 200, await r.text()
        return await r.json()


@pytest.mark.usefixtures("_logging_restored")
async def test_a_restarted_child_has_the_futures_e_and_t_logs_to_the_recorders_log_file(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "logs" / "shriven.log"
    configure_logging("info", log_file=log_file)
    books = BookKeeper()
    now = time.time_ns()
    snapshot = BinanceFuturesDepthSnapshot(
        now, 1, VENUE, "BTCUSDT", 100, 1_000, 999, (("50000.0", "1.0"),), (("50001.0", "2.0"),)
    )
    diff = BinanceFuturesDepth(
        now + 1, 2, VENUE, "BTCUSDT", 95, 105, 90, 1_234, 1_233, (("50000.0", "3.0"),), ()
    )
    async with child(tmp_path, books) as server:
        hand(server, books, [snapshot, diff])
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: server.state == "up" and server.restarts == 1, 60, "a restart")
        # the first batch the new child is handed brings it the recorder's books and times
        hand(server, books, [KiteTick(now + 2, 3, 256265, "ltp", 100)])
        server.tap(b"\xc1 not msgpack")  # a batch it cannot read: one log line, no more
        answer = await depth(server.url)
        await asyncio.sleep(0.5)
        assert server.state == "up" and server.restarts == 1
    assert answer["lastUpdateId"] == 105
    assert (answer["E"], answer["T"]) == (1_234, 1_233)  # not 0 until the symbol's next diff
    assert [[float(p), float(q)] for p, q in answer["bids"]] == [[50000.0, 3.0]]
    logging.shutdown()
    served = [line for line in log_file.read_text().splitlines() if " serving " in line]
    assert len(served) == 2  # each child's own event, in the recorder's log file
    assert all("process=serve" in line and server.url in line for line in served)
    assert "a batch from the recorder could not be served" in log_file.read_text()


async def test_a_child_this_far_behind_is_killed_and_restarted_while_the_recorder_goes_on(
    tmp_path: Path,
) -> None:
    books = BookKeeper()
    async with child(tmp_path, books, max_backlog_bytes=256 * 1024) as server:
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # a child that reads nothing more
        payload = encode_batch(
            [KiteTick(time.time_ns(), i, 256265, "ltp", 100 + i) for i in range(2000)]
        )
        handed = 0
        while server.state == "up" and handed < 1000:
            server.tap(payload)  # never waits: the pipe's backlog grows
            handed += 1
            await asyncio.sleep(0)
        assert server.state == "down"
        assert handed * len(payload) > 256 * 1024
        await wait_for(lambda: server.state == "up" and server.restarts == 1, 60, "a restart")
        assert server.pid != pid
        assert server.batches_skipped >= 1


def test_the_live_servers_process_loads_no_store_reader_until_asked() -> None:
    # Its start-up: the history and query code (the replay readers, the WAL store, the Kite
    # instruments' HTTP client) was a fifth of the child's CPU before the first batch.
    code = (
        "import sys, shriven.serve.child; "
        "print(sorted(m for m in sys.modules if m.startswith(('shriven.replay.', "
        "'shriven.wal.store', 'shriven.serve.history', 'shriven.serve.query', 'requests'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
