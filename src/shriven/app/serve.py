"""``shriven serve`` and ``run --serve``: the server's options from the settings, and serving a
store until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from shriven.config import Settings
from shriven.errors import NotAStoreError
from shriven.logging import get_logger
from shriven.replay import load_zone
from shriven.serve import ServeOptions, Server
from shriven.serve.process import BooksFn, ServeProcess

__all__ = ["live_server", "live_server_process", "serve", "serve_options"]

log = get_logger("shriven.app.serve")


def serve_options(
    settings: Settings, *, host: str | None = None, port: int | None = None
) -> ServeOptions:
    s = settings.serve
    return ServeOptions(
        host=s.host if host is None else host,
        port=s.port if port is None else port,
        api_key=s.api_key,
        max_clients=s.max_clients,
        max_subscriptions=s.max_subscriptions,
        client_buffer_bytes=s.client_buffer_bytes,
        history_stall_secs=s.history_stall_secs,
        cache_dir=settings.cache_dir,
    )


def live_server(settings: Settings, port: int) -> Server:
    """An in-process live server (its tap added by the caller): tests and benchmarks."""
    return Server(
        serve_options(settings, port=port),
        Path(settings.pipeline.data_dir),
        load_zone(settings.market_tz),
        live=True,
    )


def live_server_process(settings: Settings, port: int, books: BooksFn) -> ServeProcess:
    """The server ``run --serve PORT`` starts: its own process, fed from the pipeline's payload
    tap (added by the caller); ``books`` gives the recorder's books for a (re)started child."""
    load_zone(settings.market_tz)  # a bad zone fails here, in the recorder, in one line
    return ServeProcess(
        serve_options(settings, port=port),
        Path(settings.pipeline.data_dir),
        settings.market_tz,
        books,
    )


async def serve_store(
    settings: Settings,
    data_dir: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    duration: float | None = None,
) -> int:
    if not (data_dir / "ticks").is_dir() and not (data_dir / "lob").is_dir():
        raise NotAStoreError(
            f"{data_dir} is not a shriven store (no ticks/ or lob/ directory): give the data "
            "directory a recorder wrote (--data-dir)"
        )
    server = Server(
        serve_options(settings, host=host, port=port),
        data_dir,
        load_zone(settings.market_tz),
        live=False,
    )
    url = await server.start()
    print(f"shriven: serving {data_dir} at {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    finally:
        await server.stop()
    return 0


def serve(
    settings: Settings,
    data_dir: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    duration: float | None = None,
) -> int:
    return asyncio.run(serve_store(settings, data_dir, host=host, port=port, duration=duration))
