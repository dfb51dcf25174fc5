"""The aiohttp application: routes, the API key check, /metrics, start and stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web

from shriven.errors import ConfigError
from shriven.events import BINANCE_VENUES, Record
from shriven.feeds.binance.venues import MARKETS
from shriven.logging import get_logger
from shriven.serve import binance, kite
from shriven.serve.auth import key_matches, presented_key
from shriven.serve.core import Core, json_error
from shriven.serve.options import ServeOptions
from shriven.serve.stats import ServeStats, render_metrics

__all__ = ["Server"]

log = get_logger("shriven.serve")

_Handler = Callable[[Core, web.Request], Awaitable[web.StreamResponse]]
_HISTORY = "/history/{start}/{end}/{speed}"


def _venue_routes(venue: str) -> tuple[tuple[str, _Handler], ...]:
    """A Binance venue's endpoints under ``/<venue>``: its own stream and REST paths, so a client
    changes only its base URLs (``wss://fstream.binance.com`` -> ``ws://HOST:PORT/binance-usdm``)."""
    depth = MARKETS[venue].depth_path
    stream = partial(binance.binance_stream, venue=venue)
    history = partial(binance.binance_history_stream, venue=venue)
    return (
        (f"/{venue}/stream", stream),
        (f"/{venue}/ws/{{stream}}", stream),
        (f"/{venue}{depth}", partial(binance.binance_depth, venue=venue)),
        (f"/{venue}{_HISTORY}/stream", history),
        (f"/{venue}{_HISTORY}/ws/{{stream}}", history),
        (f"/{venue}{_HISTORY}{depth}", partial(binance.binance_history_depth, venue=venue)),
    )


async def _query(core: Core, request: web.Request, name: str) -> web.StreamResponse:
    """A query API endpoint, its module imported at the first request: the live server's
    process never loads the store's readers (its start-up)."""
    from shriven.serve import query

    handler: _Handler = getattr(query, name)
    return await handler(core, request)


_QUERIES = ("records", "book", "instruments", "stats")
_ROUTES: tuple[tuple[str, _Handler], ...] = (
    ("/kite", kite.kite_live),
    ("/kite" + _HISTORY, kite.kite_history),
    *(route for venue in BINANCE_VENUES for route in _venue_routes(venue)),
    *((f"/v1/{name}", partial(_query, name=name)) for name in _QUERIES),
)


class Server:
    """``shriven serve`` (``live=False``: history and queries over ``data_dir``) and
    ``run --serve`` (``live=True``: also the recorder's batches, through :meth:`tap`)."""

    def __init__(
        self, options: ServeOptions, data_dir: Path | None, zone: ZoneInfo, *, live: bool
    ) -> None:
        options.check()
        self.options = options
        self.core = Core(options, data_dir, zone, live=live)
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._fanout: asyncio.Task[None] | None = None
        self._heartbeats: asyncio.Task[None] | None = None

    @property
    def stats(self) -> ServeStats:
        return self.core.stats

    def tap(self, batch: Sequence[Record]) -> None:
        """For ``Pipeline.add_tap(server.tap, durable=False)``: each batch once written."""
        live = self.core.live
        if live is not None:
            live.tap(batch)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        core = self.core
        for prefix in ("", "/key/{key}"):
            for path, handler in _ROUTES:
                app.router.add_get(prefix + path, _bind(core, handler))
            app.router.add_get(prefix + "/metrics", self._metrics)
        return app

    async def start(self) -> str:
        """Bind and serve; returns the base URL (``http://HOST:PORT``)."""
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(
                f"cannot serve on {self.options.host}:{self.options.port}: "
                f"{exc.strerror or exc}; choose another port"
            ) from None
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        if self.core.live is not None:
            self._fanout = asyncio.create_task(self.core.live.run(), name="serve-fanout")
        self._heartbeats = asyncio.create_task(self.core.heartbeats(), name="serve-heartbeats")
        log.info("serving", url=self.url, live=self.core.live is not None)
        return self.url

    async def stop(self) -> None:
        await self.core.close_all()
        for task in (self._fanout, self._heartbeats):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._fanout = self._heartbeats = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        expected = self.options.api_key
        if expected is not None and expected.get_secret_value():
            got = presented_key(request)
            if not key_matches(got, expected):
                self.core.stats.rejected["auth"] += 1
                if got is None:
                    return json_error(
                        401,
                        "this server needs its API key: send it as access_token= (KiteTicker), "
                        "key=, an X-MBX-APIKEY header or a /key/KEY/ path prefix",
                    )
                return json_error(403, "wrong API key")
        try:
            return await handler(request)
        except web.HTTPNotFound:
            self.core.stats.rejected["not_found"] += 1
            return json_error(
                404,
                f"no such endpoint {request.path}: see /kite, /binance/stream, "
                "/binance/api/v3/depth, /binance-usdm/stream, /binance-usdm/fapi/v1/depth, "
                "/binance-coinm/stream, /binance-coinm/dapi/v1/depth, /v1/records, /v1/book, "
                "/v1/instruments, /v1/stats",
            )
        except web.HTTPMethodNotAllowed:
            return json_error(405, f"{request.method} is not served here: use GET")

    async def _metrics(self, request: web.Request) -> web.Response:
        body = render_metrics(self.core.stats)
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


def _bind(core: Core, handler: _Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def bound(request: web.Request) -> web.StreamResponse:
        return await handler(core, request)

    return bound
