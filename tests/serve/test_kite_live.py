"""`shriven run --sim --serve 0`, and kiteconnect's KiteTicker on /kite: every tick it decodes
is a recorded tick of its token, in order, none skipped, in the mode it asked for."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import aiohttp

from shriven.events import KITE_SEGMENT_INDICES, KiteTick
from shriven.replay import StoreReader

from .helpers import kiteconnect_view, run_kite_client, ticks_of


async def _serving_url(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        assert line, "the recorder ended before it served"
        m = re.search(r"serving live data at (http://\S+)", line)
        if m:
            return m.group(1)


async def _tokens(url: str) -> list[int]:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            async with s.get(url + "/v1/instruments") as r:
                rows = (await r.json())["kite"]
            if len(rows) >= 4:
                return [row["instrument_token"] for row in rows]
            await asyncio.sleep(0.1)
    raise AssertionError("the recorder listed no Kite instruments")


async def test_kiteticker_on_the_live_recorder_gets_the_recorded_ticks(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["SHRIVEN_CACHE_DIR"] = str(tmp_path / "cache")
    env["SHRIVEN_PIPELINE__SPOT_SYMBOLS"] = '["NIFTY 50"]'
    env["SHRIVEN_PIPELINE__OPTION_STRIKE_RANGE"] = "2"
    data = tmp_path / "market"
    cmd = [sys.executable, "-m", "shriven", "run", "--sim", "--quiet", "--health-port", "-1"]
    cmd += ["--data-dir", str(data), "--sim-rate", "400", "--duration", "11", "--serve", "0"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = await _serving_url(proc)
        drain = asyncio.create_task(proc.stderr.read())  # type: ignore[union-attr]
        tokens = await _tokens(url)
        index = next(t for t in tokens if t & 0xFF == KITE_SEGMENT_INDICES)
        others = [t for t in tokens if t != index]
        modes = {index: "full", others[0]: "full", others[1]: "quote", others[2]: "ltp"}
        events = await run_kite_client(tmp_path, url.replace("http", "ws") + "/kite", modes, 4)
        await asyncio.wait_for(proc.wait(), 60)
        await drain
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0
    got = ticks_of(events)
    recorded: dict[int, list[KiteTick]] = {}
    for r in StoreReader(data).ticks.records():
        if type(r) is KiteTick:
            recorded.setdefault(r.instrument_token, []).append(r)
    for token, mode in modes.items():
        mine = [t for t in got if t["instrument_token"] == token]
        assert len(mine) >= 5, token
        views = [kiteconnect_view(r, mode) for r in recorded[token]]
        # a contiguous run of the recorded ticks: none skipped, none repeated
        starts = [i for i, v in enumerate(views) if v == mine[0]]
        assert any(views[i : i + len(mine)] == mine for i in starts), token
        assert {t["mode"] for t in mine} == {mode if token != index or mode != "full" else "full"}
    assert json.dumps(events[0]).find("connected") > 0
