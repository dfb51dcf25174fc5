"""`run --serve`'s server in its own process: fed over a pipe from the recorder's payload tap.
When it dies the recorder records on and says so on /health, and a new one, started with
back-off on the same port, serves books consistent with its stream at once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from shriven.pipeline.health import evaluate

from .binance_client import keep_book
from .live import live_binance_process, wait_for
from .test_binance_book import assert_same_books, shriven_books


async def test_a_killed_server_process_is_reported_and_restarted_while_recording_goes_on(
    tmp_path: Path,
) -> None:
    async with live_binance_process(tmp_path) as (pipeline, _sims, server, data):
        base_ws, base_http = (
            server.url.replace("http", "ws", 1) + "/binance",
            server.url + "/binance",
        )
        first = await keep_book(base_ws, base_http, "BTCUSDT", updates=15)
        url, pid = server.url, server.pid
        assert pid is not None and pid != os.getpid()

        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: server.state != "up", 10, "the recorder to see its server die")
        report = evaluate(pipeline.sources)
        assert report["serve"]["state"] in ("down", "starting")  # type: ignore[index]
        assert any(p.startswith("live server down (exit code -9)") for p in report["problems"])  # type: ignore[union-attr]
        written = pipeline.stats.records_written
        await wait_for(lambda: server.state == "up" and server.restarts == 1, 60, "a restart")
        assert pipeline.stats.records_written > written  # the recorder never waited for it
        assert server.url == url and server.pid != pid
        assert not evaluate(pipeline.sources)["problems"]

        again = await keep_book(base_ws, base_http, "BTCUSDT", updates=15)
        assert again.snapshots == 1 and again.resyncs == 0  # its first snapshot was good
    recorded = shriven_books(data, "BTCUSDT")
    assert_same_books(first, recorded, 15)
    assert_same_books(again, recorded, 15)
