"""Run a simulator on its own event loop in a background thread, for synchronous callers
(CLI commands, blocking clients such as kiteconnect, subprocess tests)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Simulator(Protocol):
    async def start(self) -> str: ...

    async def stop(self) -> None: ...


@contextmanager
def simulator_thread(sim: Simulator, timeout: float = 30.0) -> Iterator[str]:
    """Start ``sim`` in a daemon thread; yields its base URL; stops it on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="simulator", daemon=True)
    thread.start()
    try:
        url = asyncio.run_coroutine_threadsafe(sim.start(), loop).result(timeout)
        yield url
    finally:
        try:
            asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            loop.close()
