"""shriven monitor, headless through textual's Pilot at 80x24: against a real `run --sim` the
numbers on screen are /health's; a recorder that stops answering is shown as such; tab switches
recorder and q quits; the console status line and the monitor show the same state."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import requests

from shriven.config import PipelineConfig
from shriven.dashboard.app import MonitorApp
from shriven.dashboard.model import Poll, RecorderView, quantile
from shriven.dashboard.screen import HEIGHT, WIDTH, render
from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.health import evaluate
from shriven.wal import WalOptions

from .conftest import wait_for_data


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def _until(pilot, app: MonitorApp, polls: int) -> None:
    for _ in range(200):  # bounded: 20 s at most
        if app.polls >= polls:
            return
        await pilot.pause(0.1)
    raise AssertionError(f"only {app.polls} polls in 20 s")


async def test_the_screen_shows_the_numbers_of_health(sim_recorder):
    wait_for_data(sim_recorder)
    app = MonitorApp([sim_recorder], poll_every_s=0.5)
    async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
        await _until(pilot, app, 3)
        lines = app.screen_lines()
        health = app.views[0].last.health
        fresh = requests.get(f"{sim_recorder}/health", timeout=5).json()
    text = "\n".join(lines)
    assert len(lines) <= HEIGHT and all(len(line) <= WIDTH for line in lines)
    assert lines[1].startswith(health["status"])
    for venue, f in health["feeds"].items():
        row = next(line for line in lines if line.startswith(venue))
        assert row.split()[1] == "up"
        numbers = row.split()[-3:]
        assert numbers == [str(f["reconnects"]), str(f["gaps"]), str(f["parse_errors"])]
    q = health["queue"]
    assert f"queue {q['depth']}/{q['capacity']}" in text
    assert f"high water {q['high_water']:,}" in text
    assert f"written {health['wal']['records_written']:,} (" in text
    assert f"books {health['books']['count']} " in text
    assert "fsync p99 " in text and "receive to durable p99 " in text
    assert re.search(r"fsync p99 \d+\.\d ms", text), text
    # the simulated Kite universe: spot, ATM and strikes as /health has them
    u = health["kite_universe"]["NIFTY 50"]
    assert f"ATM {u['atm']:g} strikes {u['strikes']}" in text
    # /health itself (a moment later) agrees on what does not move
    assert fresh["queue"]["capacity"] == q["capacity"]
    assert fresh["books"]["count"] == health["books"]["count"]
    assert set(fresh["feeds"]) == set(health["feeds"])


async def test_a_recorder_that_stops_answering_is_shown_and_tab_switches(sim_recorder):
    dead = _closed_port_url()
    app = MonitorApp([sim_recorder, dead], poll_every_s=0.3)
    async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
        await _until(pilot, app, 2)
        assert app.current == 0 and "[1/2]" in app.screen_lines()[0]
        await pilot.press("tab")
        lines = app.screen_lines()
        assert app.current == 1 and dead in lines[0]
        assert lines[1] == "NOT ANSWERING: connection refused"
        await pilot.press("tab")
        assert app.current == 0
        await pilot.press("q")
    assert app.return_code in (0, None)


def test_a_recorder_that_went_away_keeps_its_last_numbers_and_says_so():
    view = RecorderView("http://127.0.0.1:1")
    health = {"status": "ok", "uptime_s": 5, "feeds": {}, "queue": {"depth": 1, "capacity": 10},
              "wal": {"records_written": 42, "bytes_written": 1000}, "books": {"count": 3},
              "problems": []}  # fmt: skip
    view.update(Poll(100.0, health, {}))
    view.failed(101.0, "connection refused")
    lines = render(view, now=131.0)
    assert lines[1].startswith("NOT ANSWERING for 30 s (connection refused); last seen 31 s ago")
    assert "written 42 (1.0 kB)" in "\n".join(lines)


def test_p99_interpolates_inside_its_bucket_like_prometheus():
    buckets = {0.001: 0, 0.01: 90, 0.1: 100, float("inf"): 100}
    assert abs(quantile(0.99, buckets) - (0.01 + 0.09 * 0.9)) < 1e-9
    assert quantile(0.99, buckets, buckets) is None  # nothing observed in between


def test_the_console_status_line_and_the_monitor_agree(tmp_path: Path):
    config = PipelineConfig(data_dir=tmp_path / "d", max_queue_size=500)
    pipeline = Pipeline(config, wal=WalOptions(), health_port=None, free_bytes=lambda: 10**9)
    pipeline.stats.records_written, pipeline.stats.bytes_written = 12_345, 6_789_000
    pipeline.stats.books = 7
    line = pipeline.monitor.status_line()
    view = RecorderView("local")
    view.update(Poll(0.0, evaluate(pipeline.sources), {}))
    screen = "\n".join(render(view))
    parts = line.split(" | ")
    assert parts[0] == screen.splitlines()[1].split()[0] == "degraded"  # under 2 GiB free
    for part in parts[1:]:  # queue 0/500, written 12,345 (6.8 MB), books 7, disk 1.0 GB free,
        # and the problems: disk space low
        assert part in screen, (part, screen)
