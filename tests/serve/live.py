"""A live recorder with the server on its tap, wired as `shriven run --sim --serve` wires it,
all on loopback in the test's event loop: the simulators, the real feeds, the real pipeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shriven.app.simulators import Simulators
from shriven.app.startup import add_binance, add_binance_venue, wal_options
from shriven.config import Settings
from shriven.events import SeqCounter
from shriven.feeds.connection import Backoff
from shriven.pipeline.daemon import Pipeline
from shriven.serve import ServeOptions, Server
from shriven.serve.process import ServeProcess
from shriven.wal import StoreWriter

from .helpers import ZONE


@dataclass
class Live:
    pipeline: Pipeline
    sims: Simulators
    server: Server
    data_dir: Path

    @property
    def ws(self) -> str:
        return self.server.url.replace("http", "ws", 1)


async def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _recorder(
    tmp_path: Path, symbols: Sequence[str], venue: str
) -> tuple[Pipeline, Simulators, Path]:
    """The simulator of ``venue`` (spot, or a futures venue in the simulator's futures mode)
    and a recorder of it, not yet started."""
    data = tmp_path / "market"
    sims = Simulators(seed=5)
    base = Settings(
        _env_file=None,  # type: ignore[call-arg]
        cache_dir=tmp_path / "cache",
        pipeline={"data_dir": str(data), "snapshot_interval_secs": 1},  # type: ignore[arg-type]
    )
    settings = await sims.start(
        base,
        (venue,),
        binance_symbols=symbols,
        futures_symbols={venue: symbols},
        keep_ledgers=True,
    )
    cfg = settings.pipeline
    pipeline = Pipeline(
        cfg, open_store=lambda: StoreWriter(cfg.data_dir, wal_options(cfg)), health_port=None
    )
    if venue == "binance":
        add_binance(pipeline, settings)
    else:
        await add_binance_venue(pipeline, settings, venue)
    return pipeline, sims, data


@asynccontextmanager
async def live_binance(
    tmp_path: Path,
    symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
    venue: str = "binance",
    **serve: Any,
) -> AsyncIterator[Live]:
    """The recorder with the server on its record tap, in this process."""
    pipeline, sims, data = await _recorder(tmp_path, symbols, venue)
    server = Server(ServeOptions(port=0, **serve), data, ZONE, live=True)
    await server.start()
    pipeline.add_tap(server.tap, durable=False)
    await pipeline.start()
    try:
        yield Live(pipeline, sims, server, data)
    finally:
        pipeline.request_stop("test over")
        await pipeline.shutdown()
        await server.stop()
        await sims.stop()


@asynccontextmanager
async def live_binance_process(
    tmp_path: Path, symbols: Sequence[str] = ("BTCUSDT",)
) -> AsyncIterator[tuple[Pipeline, Simulators, ServeProcess, Path]]:
    """The spot recorder with the live server in its own process, wired as `run --serve` wires
    it (payload tap, /health section), restarting fast."""
    pipeline, sims, data = await _recorder(tmp_path, symbols, "binance")
    books = pipeline.writer.books
    server = ServeProcess(
        ServeOptions(port=0),
        data,
        "Asia/Kolkata",
        lambda: books.snapshots(time.time_ns(), SeqCounter()),
        backoff=Backoff(0.3, 0.6),
    )
    await server.start()
    pipeline.add_payload_tap(server.tap, prompt=True)
    pipeline.add_tap(server.record_tap, durable=False)
    pipeline.sources.sections["serve"] = server.health
    await pipeline.start()
    try:
        yield pipeline, sims, server, data
    finally:
        pipeline.request_stop("test over")
        await pipeline.shutdown()
        await server.stop()
        await sims.stop()
