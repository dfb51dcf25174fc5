"""What every endpoint shares: options, counters, the connected clients, the store and the
live fan-out; and one websocket lifecycle (accept, limits, receive loop, end) for all of them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from aiohttp import WSMsgType, web

from shriven.book import BookKeeper
from shriven.errors import ShrivenError
from shriven.events import (
    BINANCE_VENUES,
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceForceOrder,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BinanceMarkPrice,
    BinanceTrade,
    BookSnapshot,
    KiteTick,
    Record,
    Status,
    StatusKind,
)
from shriven.logging import get_logger
from shriven.serve.binance_wire import BinanceSubscriptions, EventEncoder
from shriven.serve.clients import Client, ClientGone, close_reason, send_heartbeats
from shriven.serve.frames import binary_frame, frame
from shriven.serve.kite_wire import KiteSubscriptions, MessageEncoder, WireTick
from shriven.serve.options import ServeOptions
from shriven.serve.stats import ServeStats

__all__ = ["Core", "LiveFanout", "json_error"]

log = get_logger("shriven.serve")

_MAX_CLIENT_MESSAGE: Final = 64 * 1024
# Batches the live fan-out may hold before it is deemed unable to keep up: every live client is
# then cut (the recorder is never made to wait for the server).
_MAX_PENDING_BATCHES: Final = 10_000
_HISTORY_PATHS: Final = 256  # history paths whose newest session is remembered
# Live Kite ticks of one batch go to a client as messages of up to this many packets: a batch
# holds one venue message at a normal rate, dozens when the recorder is catching up, and one
# send per client per batch keeps the fan-out's cost from growing with the backlog.
_MAX_PACKETS_PER_MESSAGE: Final = 1000
# Pending batches are joined into one dispatch up to about this many records.
_COALESCE_RECORDS: Final = 5000
# Binance records sent on a stream (the depth diffs also update the live books)
_EVENTS: Final = frozenset(
    {
        BinanceDepth,
        BinanceTrade,
        BinanceFuturesDepth,
        BinanceAggTrade,
        BinanceBookTicker,
        BinanceMarkPrice,
        BinanceForceOrder,
    }
)


def json_error(status: int, text: str) -> web.Response:
    """One line of JSON: ``{"error": "..."}``."""
    return web.Response(
        status=status, text=json.dumps({"error": text}) + "\n", content_type="application/json"
    )


class _Group:
    """The clients of one protocol with equal subscriptions, and the frames they get from one
    dispatch (in order), with each frame's receive time."""

    __slots__ = ("clients", "frames", "recv", "subs")

    def __init__(self, subs: KiteSubscriptions | BinanceSubscriptions) -> None:
        self.subs = subs
        self.clients: list[Client] = []
        self.frames: list[bytes] = []
        self.recv: list[int] = []


def _groups(
    clients: dict[Client, KiteSubscriptions] | dict[Client, BinanceSubscriptions],
) -> list[_Group]:
    by_key: dict[object, _Group] = {}
    for c, subs in clients.items():
        key = subs.key if type(subs) is KiteSubscriptions else (subs.raw, frozenset(subs.streams))  # type: ignore[union-attr]
        g = by_key.get(key)
        if g is None:
            g = by_key[key] = _Group(subs)
        g.clients.append(c)
    return list(by_key.values())


class LiveFanout:
    """Batches from the recorder loop's tap, in WAL order, to every live client that asked for
    them; and the books as of the last record handed out (``/api/v3/depth`` answers from them,
    so a snapshot is never behind a diff already written to a client).

    Each message is encoded and framed once per group of clients with equal subscriptions and
    the same bytes written to each of them, one write per client per dispatch; batches that
    arrived together are dispatched together (their Kite ticks in one message, as Kite joins
    the packets of one moment)."""

    def __init__(self, stats: ServeStats) -> None:
        self.stats = stats
        self.kite: dict[Client, KiteSubscriptions] = {}
        # venue ("binance", "binance-usdm", "binance-coinm") -> its stream clients
        self.binance: dict[str, dict[Client, BinanceSubscriptions]] = {
            v: {} for v in BINANCE_VENUES
        }
        self.books = BookKeeper()
        self.symbols: set[str] = set()  # Binance book keys seen ("binance-usdm:BTCUSDT")
        # futures book key -> (E, T) of its last diff applied: a depth answer carries them
        self.times: dict[str, tuple[int, int]] = {}
        self.batches = 0
        # "kite" or a Binance venue -> its clients grouped by subscription, until one changes
        self._grouped: dict[str, list[_Group]] = {}
        self._pending: deque[Sequence[Record | WireTick]] = deque()
        self._wake = asyncio.Event()

    def add(
        self, name: str, client: Client, subs: KiteSubscriptions | BinanceSubscriptions
    ) -> None:
        """A stream client of ``name`` ("kite" or a Binance venue) with its subscriptions."""
        if name == "kite":
            self.kite[client] = subs  # type: ignore[assignment]
        else:
            self.binance[name][client] = subs  # type: ignore[assignment]
        self._grouped.pop(name, None)

    def remove(self, name: str, client: Client) -> None:
        (self.kite if name == "kite" else self.binance[name]).pop(client, None)  # type: ignore[attr-defined]
        self._grouped.pop(name, None)

    def regroup(self, name: str) -> None:
        """A client of ``name`` changed its subscriptions."""
        self._grouped.pop(name, None)

    def _groups(self, name: str) -> list[_Group]:
        groups = self._grouped.get(name)
        if groups is None:
            groups = self._grouped[name] = _groups(
                self.kite if name == "kite" else self.binance[name]
            )
        return groups

    def tap(self, batch: Sequence[Record | WireTick]) -> None:
        """The recorder loop's written-batch tap: hand the batch on, nothing more."""
        if len(self._pending) >= _MAX_PENDING_BATCHES:
            self._pending.clear()
            for c in self.stream_clients():
                c.cut("overloaded", "server overloaded: the live fan-out fell behind the recorder")
            log.warning("live fan-out fell behind; every live client was disconnected")
        self._pending.append(batch)
        self._wake.set()

    def restore(
        self, snapshots: Sequence[Record], times: dict[str, tuple[int, int]] | None = None
    ) -> None:
        """Start the books from the recorder's (``BookSnapshot`` records as of the batch before
        the first one this fan-out gets: a server process started beside a running recorder),
        with each futures book's last (E, T)."""
        for r in snapshots:
            if type(r) is BookSnapshot and r.venue in BINANCE_VENUES:
                self.books.restore(r)
                self.symbols.add(f"{r.venue}:{r.instrument}")
        if times:
            self.times.update(times)

    async def run(self) -> None:
        pending = self._pending
        while True:
            await self._wake.wait()
            self._wake.clear()
            while pending:
                batch = pending.popleft()
                if pending:
                    joined = list(batch)
                    while pending and len(joined) < _COALESCE_RECORDS:
                        joined.extend(pending.popleft())
                    batch = joined
                self.dispatch(batch)
                self.batches += 1
                if pending:
                    await asyncio.sleep(0)  # let the clients' reads run between dispatches

    def dispatch(self, batch: Sequence[Record | WireTick]) -> None:
        runs: list[list[KiteTick | WireTick]] = []  # Kite ticks since the last text, by receipt
        kite: list[_Group] | None = None  # built when first needed
        binance: dict[str, list[_Group]] = {}
        venues = self.binance
        for r in batch:
            t = type(r)
            if t is WireTick or t is KiteTick:
                if runs and r.recv_ns == runs[-1][0].recv_ns:
                    runs[-1].append(r)  # type: ignore[arg-type]
                else:
                    runs.append([r])  # type: ignore[list-item]
                continue
            if t in _EVENTS:
                venue = "binance" if t is BinanceDepth or t is BinanceTrade else r.venue  # type: ignore[union-attr]
                if t is BinanceDepth or t is BinanceFuturesDepth:
                    self.books.apply(r)
                    key = f"{venue}:{r.symbol}"  # type: ignore[union-attr]
                    self.symbols.add(key)
                    if t is BinanceFuturesDepth:
                        self.times[key] = (r.event_time, r.transaction_time)  # type: ignore[union-attr]
                clients = venues.get(venue)
                if clients:
                    groups = binance.get(venue)
                    if groups is None:
                        groups = binance[venue] = self._groups(venue)
                    enc = EventEncoder(r)
                    for g in groups:
                        f = enc.frame_for(g.subs)  # type: ignore[arg-type]
                        if f is not None:
                            g.frames.append(f)
                            g.recv.append(r.recv_ns)
            elif t is BinanceDepthSnapshot or t is BinanceFuturesDepthSnapshot:
                self.books.apply(r)
                venue = "binance" if t is BinanceDepthSnapshot else r.venue  # type: ignore[union-attr]
                key = f"{venue}:{r.symbol}"  # type: ignore[union-attr]
                self.symbols.add(key)
                if t is BinanceFuturesDepthSnapshot:
                    self.times[key] = (r.event_time, r.transaction_time)  # type: ignore[union-attr]
            elif t is Status:
                if r.venue in BINANCE_VENUES:  # type: ignore[union-attr]
                    self.books.apply(r)
                elif r.venue == "kite" and r.kind == StatusKind.VENUE_MESSAGE and self.kite:  # type: ignore[union-attr]
                    if kite is None:
                        kite = self._groups("kite")
                    _kite_frames(runs, kite)  # ticks before it go first
                    runs = []
                    f = frame(r.detail)  # type: ignore[union-attr]
                    for g in kite:
                        g.frames.append(f)
                        g.recv.append(r.recv_ns)
        if runs and self.kite:
            if kite is None:
                kite = self._groups("kite")
            _kite_frames(runs, kite)
        now = time.time_ns()
        if kite is not None:
            self._send(kite, "kite", now)
        for groups in binance.values():
            self._send(groups, "binance", now)

    def _send(self, groups: list[_Group], protocol: str, now: int) -> None:
        stats = self.stats
        for g in groups:
            frames = g.frames
            if not frames:
                continue
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            sent = 0
            for c in g.clients:
                if c.write(data):
                    sent += 1
            if sent:
                stats.messages[protocol] += len(frames) * sent
                stats.bytes[protocol] += len(data) * sent
                for recv_ns in g.recv:
                    stats.observe_latency((now - recv_ns) / 1e9, sent)
            frames.clear()
            g.recv.clear()

    def stream_clients(self) -> list[Client]:
        return [*self.kite, *(c for clients in self.binance.values() for c in clients)]

    def cut_all(self, why: str, reason: str, code: int) -> None:
        for c in self.stream_clients():
            c.cut(why, reason, code)


def _kite_frames(runs: list[list[KiteTick | WireTick]], groups: list[_Group]) -> None:
    """Each group's binary messages for ``runs``, framed, appended to its frames."""
    if not runs:
        return
    enc = MessageEncoder(runs, _MAX_PACKETS_PER_MESSAGE)
    recv_ns = runs[0][0].recv_ns
    for g in groups:
        for m in enc.messages_for(g.subs):  # type: ignore[arg-type]
            g.frames.append(binary_frame(m))
            g.recv.append(recv_ns)


class Core:
    def __init__(
        self, options: ServeOptions, data_dir: Path | None, zone: ZoneInfo, *, live: bool
    ) -> None:
        self.options = options
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.zone = zone
        self.stats = ServeStats()
        self.clients: set[Client] = set()
        self.live = LiveFanout(self.stats) if live else None
        # history path -> its newest Binance stream session (kept after the stream ends: a
        # client reads its socket's backlog, and asks for snapshots, after the server is done)
        self.history: OrderedDict[str, object] = OrderedDict()
        self.stopping = False

    def remember_history(self, label: str, session: object) -> None:
        self.history[label] = session
        self.history.move_to_end(label)
        while len(self.history) > _HISTORY_PATHS:
            self.history.popitem(last=False)

    async def websocket(
        self,
        request: web.Request,
        protocol: str,
        on_text: Callable[[Client, str], None],
        *,
        heartbeat: bool = False,
        refuse: str | None = None,
        register: Callable[[Client], None] = lambda c: None,
        unregister: Callable[[Client], None] = lambda c: None,
        produce: Callable[[Client], Awaitable[None]] | None = None,
    ) -> web.StreamResponse:
        """Accept one websocket client and serve it until it or the server ends it. ``refuse``:
        accept, then close at once with that reason (clients show a close reason; few show an
        HTTP error body). ``produce`` is the history session feeding this client."""
        if len(self.clients) >= self.options.max_clients or self.stopping:
            self.stats.rejected["too_many_clients"] += 1
            return json_error(
                503,
                f"this server already has {len(self.clients)} clients (SHRIVEN_SERVE__MAX_CLIENTS"
                f" {self.options.max_clients}); try again later",
            )
        # No permessage-deflate: it would compress every message once per client (the profile's
        # top cost at 100 clients) and neither venue compresses its streams.
        ws = web.WebSocketResponse(
            heartbeat=None, autoping=True, max_msg_size=_MAX_CLIENT_MESSAGE, compress=False
        )
        await ws.prepare(request)
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_SNDBUF, self.options.socket_send_buffer
                )
        if refuse is not None:
            self.stats.rejected["bad_request"] += 1
            await ws.close(code=1008, message=close_reason(refuse))
            return ws
        client = Client(
            ws,
            request,
            protocol,
            self.stats,
            buffer_limit=self.options.client_buffer_bytes,
            heartbeat=heartbeat,
            stall_s=self.options.history_stall_secs,
        )
        self.clients.add(client)
        self.stats.clients[protocol] += 1
        register(client)
        producer = (
            asyncio.create_task(self._produce(client, produce), name=f"serve-{protocol}-history")
            if produce is not None
            else None
        )
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    on_text(client, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            unregister(client)
            client.closed_by_peer()
            self.clients.discard(client)
            self.stats.clients[protocol] -= 1
            if producer is not None and not producer.done():
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await producer
            await client.wait_closed()
        return ws

    async def _produce(self, client: Client, produce: Callable[[Client], Awaitable[None]]) -> None:
        try:
            await produce(client)
        except ClientGone:
            pass
        except ShrivenError as exc:
            client.cut("error", str(exc), code=1011)
        except Exception as exc:
            log.error("history session failed", error=repr(exc)[:200])
            client.cut("error", f"history failed: {type(exc).__name__}", code=1011)

    async def heartbeats(self) -> None:
        """Kite's 1-byte heartbeat to every Kite client sent nothing for ``heartbeat_secs``
        (within a quarter of it): one timer for all clients."""
        every = self.options.heartbeat_secs
        while True:
            await asyncio.sleep(every / 4)
            send_heartbeats(self.clients, self.stats, every)

    async def close_all(self) -> None:
        self.stopping = True
        for c in list(self.clients):
            c.cut("shutdown", "server shutting down", code=1001)
        for c in list(self.clients):
            await c.wait_closed()
