"""The Binance spot endpoints: the combined stream ``/binance/stream?streams=...`` (and the raw
``/binance/ws/<stream>``), SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS, and
``/binance/api/v3/depth``; the same under ``/binance/history/<start>/<end>/<speed>/``.

A client pointed at this base URL keeps a correct book by Binance's own procedure: the REST
snapshot comes from the books as of the last diff queued to the stream's clients (live), or from
the store just before the range and then at each recorded resync the newest history stream of
the same path has passed (history, see :class:`_Session`), so its ``lastUpdateId`` is never
behind what a client buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from shriven.errors import NotRecordedError, ReplayError, ShrivenError
from shriven.events import BinanceDepth, BinanceDepthSnapshot, BinanceTrade
from shriven.feeds.binance.wire import depth_answer
from shriven.replay import Selection, format_ns, replay_book
from shriven.serve.binance_wire import (
    BinanceSubscriptions,
    EventEncoder,
    StreamError,
    parse_streams,
)
from shriven.serve.clients import Client
from shriven.serve.core import Core
from shriven.serve.history import (
    HistoryRange,
    Pacer,
    Settle,
    check_range,
    end_of_history,
    parse_range,
    read_chunks,
)

__all__ = ["binance_depth", "binance_history_depth", "binance_history_stream", "binance_stream"]

_BINANCE_HISTORY = Selection(frozenset({"trades", "depth", "status"}), "binance")
_DEFAULT_LIMIT: Final = 100
_MAX_LIMIT: Final = 5000


def _venue_error(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def _initial_streams(core: Core, request: web.Request) -> tuple[BinanceSubscriptions, str | None]:
    """The streams named in the URL; the refusal text when one is not served or too many."""
    raw = request.match_info.get("stream")
    subs = BinanceSubscriptions(core.options.max_subscriptions, raw=raw is not None)
    names = (
        [raw] if raw is not None else [n for n in request.query.get("streams", "").split("/") if n]
    )
    try:
        subs.streams.update(parse_streams(names))
    except StreamError as exc:
        return subs, str(exc)
    if len(subs.streams) > subs.limit:
        return (
            subs,
            f"at most {subs.limit} streams per connection (SHRIVEN_SERVE__MAX_SUBSCRIPTIONS)",
        )
    return subs, None


def _on_text(
    subs: BinanceSubscriptions, settle: Settle | None = None
) -> Callable[[Client, str], None]:
    def on_text(client: Client, text: str) -> None:
        reply = subs.control(text)
        if reply is not None:
            client.offer(reply)
        if settle is not None:
            settle.control(bool(subs.streams))

    return on_text


async def binance_stream(core: Core, request: web.Request) -> web.StreamResponse:
    live = core.live
    subs, refuse = _initial_streams(core, request)
    if live is None and refuse is None:
        refuse = "no live data: this server replays a store; use /binance/history/START/END/SPEED/"
    return await core.websocket(
        request,
        "binance",
        _on_text(subs),
        refuse=refuse,
        register=lambda c: live.binance.__setitem__(c, subs) if live is not None else None,
        unregister=lambda c: live.binance.pop(c, None) if live is not None else None,
    )


def _depth_params(request: web.Request) -> tuple[str, int] | web.Response:
    symbol = request.query.get("symbol", "").strip().upper()
    if not symbol:
        return _venue_error(400, -1102, "Mandatory parameter 'symbol' was not sent.")
    try:
        limit = int(request.query.get("limit", _DEFAULT_LIMIT))
    except ValueError:
        return _venue_error(400, -1100, "Illegal characters found in parameter 'limit'.")
    if not 1 <= limit <= _MAX_LIMIT:
        return _venue_error(400, -1100, f"limit must be 1 to {_MAX_LIMIT}")
    return symbol, limit


async def binance_depth(core: Core, request: web.Request) -> web.Response:
    params = _depth_params(request)
    if isinstance(params, web.Response):
        return params
    symbol, limit = params
    if core.live is None:
        return _venue_error(
            404,
            -1121,
            "no live books: this server replays a store; use "
            "/binance/history/START/END/SPEED/api/v3/depth",
        )
    key = "binance:" + symbol
    book = core.live.books.book(key)
    if book is None:
        return _venue_error(400, -1121, f"Invalid symbol: {symbol} is not being recorded.")
    if not core.live.books.is_valid(key):
        return _venue_error(
            503, -1003, f"the book of {symbol} is resyncing after a gap; retry in a moment"
        )
    bids, asks = book.top(limit)
    return web.Response(
        text=depth_answer(book.update_id, bids, asks), content_type="application/json"
    )


@dataclass(eq=False)
class _Session:
    """One history stream, and the points its REST snapshots are taken at, per symbol: just
    before the range, then each recorded resync the stream has passed. Each snapshot request
    gets the next point not yet given (the last one again when there is no newer): a client
    asks again only when its snapshot was older than what it buffered, or after a gap, so it
    starts at the beginning of the range and gets past each resync it meets."""

    rng: HistoryRange
    anchors: dict[str, list[int]] = field(default_factory=dict)
    given: dict[str, int] = field(default_factory=dict)

    def passed_resync(self, symbol: str, recv_ns: int) -> None:
        self.anchors.setdefault(symbol, [self.rng.start_ns - 1]).append(recv_ns)

    def snapshot_at(self, symbol: str) -> int:
        points = self.anchors.get(symbol) or [self.rng.start_ns - 1]
        i = min(self.given.get(symbol, 0), len(points) - 1)
        self.given[symbol] = i + 1
        return points[i]


async def binance_history_stream(core: Core, request: web.Request) -> web.StreamResponse:
    m = request.match_info
    subs, refuse = _initial_streams(core, request)
    rng: HistoryRange | None = None
    if refuse is None:
        try:
            if core.data_dir is None:
                raise ReplayError("this server has no store to replay")
            rng = parse_range(m["start"], m["end"], m["speed"], core.zone)
            await asyncio.to_thread(check_range, core.data_dir, rng, core.zone)
        except ReplayError as exc:
            refuse = str(exc)
    settle = Settle()
    if subs.streams:
        settle.start_now()
    session = _Session(rng) if rng is not None else None

    async def produce(client: Client) -> None:
        assert core.data_dir is not None and rng is not None and session is not None
        await settle.wait()
        pacer = Pacer(rng.speed)
        sent = 0
        # closed here, not by the collector: its reader thread stops at once
        async with contextlib.aclosing(read_chunks(core.data_dir, _BINANCE_HISTORY, rng)) as chunks:
            async for chunk in chunks:
                for r in chunk:
                    t = type(r)
                    if t is BinanceDepthSnapshot:
                        session.passed_resync(r.symbol, r.recv_ns)  # type: ignore[union-attr]
                        continue
                    if t is not BinanceDepth and t is not BinanceTrade:
                        continue
                    message = EventEncoder(r).message_for(subs)
                    if message is None:
                        continue
                    await pacer.wait(r.recv_ns)
                    await client.put(message)
                    sent += 1
        await end_of_history(client, rng, core.zone, sent)

    return await core.websocket(
        request,
        "binance",
        _on_text(subs, settle),
        refuse=refuse,
        register=lambda c: core.remember_history(rng.label, session),  # type: ignore[union-attr]
        produce=produce if refuse is None else None,
    )


async def binance_history_depth(core: Core, request: web.Request) -> web.Response:
    m = request.match_info
    params = _depth_params(request)
    if isinstance(params, web.Response):
        return params
    symbol, limit = params
    try:
        if core.data_dir is None:
            raise ReplayError("this server has no store to replay")
        rng = parse_range(m["start"], m["end"], m["speed"], core.zone)
    except ReplayError as exc:
        return _venue_error(400, -1100, str(exc))
    newest = core.history.get(rng.label)
    session = newest if isinstance(newest, _Session) else _Session(rng)
    at_ns = session.snapshot_at(symbol)
    data_dir = core.data_dir
    try:
        result = await asyncio.to_thread(
            replay_book, data_dir, "binance:" + symbol, at_ns, core.zone
        )
    except NotRecordedError:
        return _venue_error(
            400, -1121, f"Invalid symbol: no book of {symbol} at {format_ns(at_ns, core.zone)}"
        )
    except ShrivenError as exc:
        return _venue_error(400, -1100, str(exc))
    book = result.book
    if not book.valid:
        return _venue_error(
            503, -1003, f"the book of {symbol} was not in sync at {format_ns(at_ns, core.zone)}"
        )
    bids, asks = book.book.top(limit)
    return web.Response(
        text=depth_answer(book.book.update_id, bids, asks), content_type="application/json"
    )
