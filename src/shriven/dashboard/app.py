"""The textual application of ``shriven monitor``: polls every recorder each second and shows
one at a time; ``tab`` switches, ``q`` quits. A recorder that stops answering is shown as such
(with the last numbers it gave), never as a crash."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from shriven.dashboard.model import Poll, RecorderView, histogram_buckets
from shriven.dashboard.screen import render

POLL_EVERY_S = 1.0
TIMEOUT_S = 2.0


async def poll(session: aiohttp.ClientSession, view: RecorderView) -> None:
    """One poll of /health and /metrics into ``view``; a failure is recorded, never raised."""
    base = view.url.rstrip("/")
    try:
        async with session.get(f"{base}/health") as r:
            health = await r.json(content_type=None)  # 503 (failing) still carries the report
        async with session.get(f"{base}/metrics") as r:
            metrics = await r.text()
        if not isinstance(health, dict) or "feeds" not in health:
            raise ValueError("not a shriven /health report")
        view.update(Poll(time.monotonic(), health, histogram_buckets(metrics)))
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        view.failed(time.monotonic(), _reason(exc))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer in {TIMEOUT_S:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        return "connection refused" if refused else f"cannot connect ({exc.os_error})"[:60]
    return (str(exc) or type(exc).__name__)[:60]


class MonitorApp(App[None]):
    CSS = "Screen { overflow: hidden; } #screen { width: 80; height: 24; }"
    BINDINGS = [  # noqa: RUF012 (textual's own convention)
        Binding("q", "quit", "quit"),
        Binding("tab", "next", "next recorder", priority=True),
    ]

    def __init__(self, urls: list[str], poll_every_s: float = POLL_EVERY_S) -> None:
        super().__init__()
        self.views = [RecorderView(u) for u in urls]
        self.current = 0
        self.poll_every_s = poll_every_s
        self.polls = 0  # completed rounds (tests wait on it)
        self._session: aiohttp.ClientSession | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="screen")

    async def on_mount(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        await self.refresh_all()
        self.set_interval(self.poll_every_s, self.refresh_all)

    async def on_unmount(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def refresh_all(self) -> None:
        if self._session is None:
            return
        await asyncio.gather(*(poll(self._session, v) for v in self.views))
        self.polls += 1
        self.show()

    def screen_lines(self) -> list[str]:
        return render(self.views[self.current], self.current, len(self.views))

    def show(self) -> None:
        self.query_one("#screen", Static).update("\n".join(self.screen_lines()))

    def action_next(self) -> None:
        self.current = (self.current + 1) % len(self.views)
        self.show()


def run_monitor(urls: list[str]) -> None:
    MonitorApp(urls).run()
