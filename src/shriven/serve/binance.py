"""The Binance endpoints, one set per venue under its name: the combined stream
``/<venue>/stream?streams=...`` (and the raw ``/<venue>/ws/<stream>``), SUBSCRIBE / UNSUBSCRIBE /
LIST_SUBSCRIPTIONS, and the venue's REST depth path (``/binance/api/v3/depth``,
``/binance-usdm/fapi/v1/depth``, ``/binance-coinm/dapi/v1/depth``); the same under
``/<venue>/history/<start>/<end>/<speed>/``. A client needs only its base URLs changed.

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
from typing import TYPE_CHECKING, Final

from aiohttp import web

from shriven.errors import NotRecordedError, ReplayError, ShrivenError
from shriven.events import BinanceDepthSnapshot, BinanceFuturesDepth, BinanceFuturesDepthSnapshot
from shriven.feeds.binance.venues import MARKETS
from shriven.feeds.binance.wire import depth_answer, futures_depth_answer
from shriven.serve.binance_wire import (
    BinanceSubscriptions,
    EventEncoder,
    StreamError,
    parse_streams,
)
from shriven.serve.clients import Client
from shriven.serve.core import Core

if TYPE_CHECKING:
    from shriven.serve.history import HistoryRange, Settle

__all__ = ["binance_depth", "binance_history_depth", "binance_history_stream", "binance_stream"]

_HISTORY_KINDS: Final = frozenset({"trades", "depth", "status", "tickers", "marks", "liquidations"})
_DEFAULT_LIMIT: Final = 100
_MAX_LIMIT: Final = 5000
# Futures answer only these limits (feeds.binance.venues), and 500 when none is given.
_FUTURES_DEFAULT_LIMIT: Final = 500


def _venue_error(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def _initial_streams(
    core: Core, request: web.Request, venue: str
) -> tuple[BinanceSubscriptions, str | None]:
    """The streams named in the URL; the refusal text when one is not served or too many."""
    raw = request.match_info.get("stream")
    subs = BinanceSubscriptions(core.options.max_subscriptions, raw=raw is not None, venue=venue)
    names = (
        [raw] if raw is not None else [n for n in request.query.get("streams", "").split("/") if n]
    )
    try:
        subs.streams.update(parse_streams(names, venue))
    except StreamError as exc:
        return subs, str(exc)
    if len(subs.streams) > subs.limit:
        return (
            subs,
            f"at most {subs.limit} streams per connection (SHRIVEN_SERVE__MAX_SUBSCRIPTIONS)",
        )
    return subs, None


def _on_text(
    subs: BinanceSubscriptions,
    settle: Settle | None = None,
    changed: Callable[[], None] = lambda: None,
) -> Callable[[Client, str], None]:
    def on_text(client: Client, text: str) -> None:
        reply = subs.control(text)
        if reply is not None:
            client.offer(reply)
        changed()
        if settle is not None:
            settle.control(bool(subs.streams))

    return on_text


async def binance_stream(
    core: Core, request: web.Request, venue: str = "binance"
) -> web.StreamResponse:
    live = core.live
    subs, refuse = _initial_streams(core, request, venue)
    if live is None and refuse is None:
        refuse = f"no live data: this server replays a store; use /{venue}/history/START/END/SPEED/"
    if live is None or refuse is not None:
        return await core.websocket(request, "binance", _on_text(subs), refuse=refuse)
    return await core.websocket(
        request,
        "binance",
        _on_text(subs, changed=lambda: live.regroup(venue)),
        register=lambda c: live.add(venue, c, subs),
        unregister=lambda c: live.remove(venue, c),
    )


def _depth_params(request: web.Request, venue: str) -> tuple[str, int] | web.Response:
    symbol = request.query.get("symbol", "").strip().upper()
    if not symbol:
        return _venue_error(400, -1102, "Mandatory parameter 'symbol' was not sent.")
    allowed = MARKETS[venue].depth_limits
    default = _FUTURES_DEFAULT_LIMIT if allowed else _DEFAULT_LIMIT
    try:
        limit = int(request.query.get("limit", default))
    except ValueError:
        return _venue_error(400, -1100, "Illegal characters found in parameter 'limit'.")
    if allowed and limit not in allowed:
        return _venue_error(
            400, -1130, f"limit must be one of {', '.join(map(str, allowed))} on {venue}"
        )
    if not 1 <= limit <= _MAX_LIMIT:
        return _venue_error(400, -1100, f"limit must be 1 to {_MAX_LIMIT}")
    return symbol, limit


def _answer(
    venue: str,
    symbol: str,
    update_id: int,
    times: tuple[int, int],
    bids: list[tuple[float, float]],
    asks: list[tuple[float, float]],
) -> web.Response:
    if venue == "binance":
        text = depth_answer(update_id, bids, asks)
    else:
        text = futures_depth_answer(venue, symbol, update_id, *times, bids, asks)
    return web.Response(text=text, content_type="application/json")


async def binance_depth(core: Core, request: web.Request, venue: str = "binance") -> web.Response:
    params = _depth_params(request, venue)
    if isinstance(params, web.Response):
        return params
    symbol, limit = params
    if core.live is None:
        return _venue_error(
            404,
            -1121,
            "no live books: this server replays a store; use "
            f"/{venue}/history/START/END/SPEED{MARKETS[venue].depth_path}",
        )
    key = f"{venue}:{symbol}"
    book = core.live.books.book(key)
    if book is None:
        return _venue_error(400, -1121, f"Invalid symbol: {symbol} is not being recorded.")
    if not core.live.books.is_valid(key):
        return _venue_error(
            503, -1003, f"the book of {symbol} is resyncing after a gap; retry in a moment"
        )
    bids, asks = book.top(limit)
    return _answer(venue, symbol, book.update_id, core.live.times.get(key, (0, 0)), bids, asks)


@dataclass(eq=False)
class _Session:
    """One history stream, and the points its REST snapshots are taken at, per symbol: the
    start, then each recorded resync the stream has passed. Each snapshot request gets the next
    point not yet given (the last one again when there is no newer): a client asks again only
    when its snapshot was older than what it buffered, or after a gap, so it starts at the
    beginning of the range and gets past each resync it meets.

    The start is just before the range on spot (the first diff then has ``U`` = lastUpdateId + 1).
    On futures it is the symbol's first diff streamed, included: Binance's futures procedure wants
    the first diff applied to hold lastUpdateId (``U <= lastUpdateId <= u``), and re-applying that
    one diff to a book that has it changes nothing."""

    rng: HistoryRange
    # symbol -> [(recv_ns, (E, T))]: the book at recv_ns, and the E and T its answer carries (a
    # futures resync's are the recorded snapshot's, a first diff's its own; spot has none)
    anchors: dict[str, list[tuple[int, tuple[int, int]]]] = field(default_factory=dict)
    given: dict[str, int] = field(default_factory=dict)

    def _start(self) -> tuple[int, tuple[int, int]]:
        return self.rng.start_ns - 1, (0, 0)

    def first_diff(self, symbol: str, recv_ns: int, times: tuple[int, int]) -> None:
        if symbol not in self.anchors:
            self.anchors[symbol] = [(recv_ns, times)]

    def passed_resync(self, symbol: str, recv_ns: int, times: tuple[int, int] = (0, 0)) -> None:
        self.anchors.setdefault(symbol, [self._start()]).append((recv_ns, times))

    def snapshot_at(self, symbol: str) -> tuple[int, tuple[int, int]]:
        points = self.anchors.get(symbol) or [self._start()]
        i = min(self.given.get(symbol, 0), len(points) - 1)
        self.given[symbol] = i + 1
        return points[i]


async def binance_history_stream(
    core: Core, request: web.Request, venue: str = "binance"
) -> web.StreamResponse:
    # Imported here: the live server's process never loads the store's readers (its start-up).
    from shriven.replay import Selection
    from shriven.serve.history import (
        Pacer,
        Settle,
        check_range,
        end_of_history,
        parse_range,
        read_chunks,
    )

    m = request.match_info
    subs, refuse = _initial_streams(core, request, venue)
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
        selection = Selection(_HISTORY_KINDS, venue)
        async with contextlib.aclosing(read_chunks(core.data_dir, selection, rng)) as chunks:
            async for chunk in chunks:
                for r in chunk:
                    t = type(r)
                    if t is BinanceDepthSnapshot:
                        session.passed_resync(r.symbol, r.recv_ns)  # type: ignore[union-attr]
                        continue
                    if t is BinanceFuturesDepthSnapshot:
                        times = (r.event_time, r.transaction_time)  # type: ignore[union-attr]
                        session.passed_resync(r.symbol, r.recv_ns, times)  # type: ignore[union-attr]
                        continue
                    message = EventEncoder(r).message_for(subs)
                    if message is None:
                        continue
                    if t is BinanceFuturesDepth:
                        times = (r.event_time, r.transaction_time)  # type: ignore[union-attr]
                        session.first_diff(r.symbol, r.recv_ns, times)  # type: ignore[union-attr]
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


async def binance_history_depth(
    core: Core, request: web.Request, venue: str = "binance"
) -> web.Response:
    from shriven.replay import format_ns, replay_book
    from shriven.serve.history import parse_range

    m = request.match_info
    params = _depth_params(request, venue)
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
    at_ns, times = session.snapshot_at(symbol)
    data_dir = core.data_dir
    try:
        result = await asyncio.to_thread(
            replay_book, data_dir, f"{venue}:{symbol}", at_ns, core.zone
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
    return _answer(venue, symbol, book.book.update_id, times, bids, asks)
