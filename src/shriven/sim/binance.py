"""A loopback Binance spot exchange: REST depth snapshots and the combined websocket stream.

It keeps, per symbol, a random-walk L2 book (the truth) and every diff it produced, so a test
can ask for the true book at any update id it reached. The sequence of books, diffs and trades
depends only on the seed; timing depends on the event loop. Streams are chosen in the URL
(``/stream?streams=...``) and with SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS messages, answered
as Binance does; a client sending more than 5 messages a second is disconnected (1008). Fault
switches: withhold a diff
(sequence gap), drop connections, stall the stream, send malformed JSON or an unsubscribed kind,
answer snapshots with 429 or with an older book.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

__all__ = ["BinanceSimulator", "LedgerEntry", "SimBook"]

TICKS_PER_UNIT = 100  # prices move in 0.01 steps
LOTS_PER_UNIT = 100_000  # quantities in 0.00001 steps
_START_MID = (6_000_000, 300_000, 50_000, 2_500)  # in ticks, cycled over the symbols


def price_str(ticks: int) -> str:
    return f"{ticks / TICKS_PER_UNIT:.8f}"


def qty_str(lots: int) -> str:
    return f"{lots / LOTS_PER_UNIT:.8f}"


@dataclass(slots=True)
class _Diff:
    first_id: int
    last_id: int
    event_time: int
    bids: dict[int, int]  # ticks -> lots (0 = removed)
    asks: dict[int, int]


@dataclass(slots=True)
class LedgerEntry:
    t: float  # time.monotonic() when sent
    conn: int  # connection number (0 for REST)
    kind: str  # "depth", "trade", "snapshot", "malformed", "unknown", "withheld", "http_<status>"
    text: str


@dataclass
class SimBook:
    """One symbol's true book in integer ticks/lots, and the diffs that led to it."""

    symbol: str
    mid: int
    levels: int
    max_history: int = 200_000
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    update_id: int = 1_000
    trade_id: int = 0
    start_id: int = 0
    start_bids: dict[int, int] = field(default_factory=dict)
    start_asks: dict[int, int] = field(default_factory=dict)
    history: list[_Diff] = field(default_factory=list)

    def seed_levels(self, rng: random.Random) -> None:
        for off in range(1, self.levels + 1):
            if rng.random() < 0.8:
                self.bids[self.mid - off] = rng.randint(1, 200_000)
            if rng.random() < 0.8:
                self.asks[self.mid + off] = rng.randint(1, 200_000)
        self.start_id = self.update_id
        self.start_bids = dict(self.bids)
        self.start_asks = dict(self.asks)

    def step(self, rng: random.Random, event_ms: int) -> _Diff:
        """Move the book one event; returns the diff (only levels that changed)."""
        bids_ch: dict[int, int] = {}
        asks_ch: dict[int, int] = {}
        move = rng.choice((-2, -1, -1, 0, 0, 0, 0, 1, 1, 2))
        self.mid += move
        mid = self.mid
        # Keep the book uncrossed and within `levels` of the mid.
        for side, ch, bad in (
            (self.bids, bids_ch, lambda p: p >= mid or p < mid - self.levels),
            (self.asks, asks_ch, lambda p: p <= mid or p > mid + self.levels),
        ):
            for p in [p for p in side if bad(p)]:
                del side[p]
                ch[p] = 0
        for _ in range(rng.randint(1, 8)):
            is_bid = rng.random() < 0.5
            side, ch = (self.bids, bids_ch) if is_bid else (self.asks, asks_ch)
            off = 1 + min(int(rng.expovariate(0.25)), self.levels - 1)
            p = mid - off if is_bid else mid + off
            if p in side and rng.random() < 0.15:
                del side[p]
                ch[p] = 0
            else:
                side[p] = ch[p] = rng.randint(1, 200_000)
        first = self.update_id + 1
        self.update_id = first + rng.randint(0, 3)
        diff = _Diff(first, self.update_id, event_ms, bids_ch, asks_ch)
        self.history.append(diff)
        if len(self.history) > self.max_history:  # fold the oldest diffs into the start book
            drop = len(self.history) // 2
            for d in self.history[:drop]:
                _apply(self.start_bids, d.bids)
                _apply(self.start_asks, d.asks)
                self.start_id = d.last_id
            del self.history[:drop]
        return diff

    def book_at(self, update_id: int) -> tuple[dict[int, int], dict[int, int]]:
        """The true book right after the diff ending at ``update_id`` (or the start)."""
        if update_id < self.start_id or update_id > self.update_id:
            raise ValueError(f"{self.symbol}: update id {update_id} never existed")
        bids = dict(self.start_bids)
        asks = dict(self.start_asks)
        if update_id == self.start_id:
            return bids, asks
        for d in self.history:
            _apply(bids, d.bids)
            _apply(asks, d.asks)
            if d.last_id == update_id:
                return bids, asks
            if d.last_id > update_id:
                break
        raise ValueError(f"{self.symbol}: update id {update_id} is inside a diff, not after one")


def _apply(side: dict[int, int], changes: dict[int, int]) -> None:
    for p, q in changes.items():
        if q:
            side[p] = q
        else:
            side.pop(p, None)


def _float_levels(side: dict[int, int], reverse: bool) -> list[tuple[float, float]]:
    return [
        (float(price_str(p)), float(qty_str(q))) for p, q in sorted(side.items(), reverse=reverse)
    ]


@dataclass(eq=False)
class _Conn:
    number: int
    ws: web.WebSocketResponse
    request: web.Request
    streams: set[str]
    stalled_until: float = 0.0
    received: deque[float] = field(default_factory=deque)  # times of the client's messages


class BinanceSimulator:
    """``await start()`` returns the base URL (``http://127.0.0.1:<port>``); REST answers at
    ``/api/v3/depth`` and the combined stream at ``/stream?streams=...`` on the same port (use
    ``ws_url`` for the feed)."""

    def __init__(
        self,
        symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT", "BNBUSDT"),
        *,
        seed: int = 1,
        interval_ms: float = 100.0,
        levels: int = 40,
        trade_probability: float = 0.5,
        ledger_size: int = 100_000,
        max_history: int = 200_000,
        quiet: Sequence[str] = (),
    ) -> None:
        self.rng = random.Random(seed)
        self.interval = interval_ms / 1000.0
        self.trade_probability = trade_probability
        self.books: dict[str, SimBook] = {}
        for i, s in enumerate(symbols):
            book = SimBook(s.upper(), _START_MID[i % len(_START_MID)], levels, max_history)
            book.seed_levels(self.rng)
            self.books[book.symbol] = book
        self.quiet = {s.upper() for s in quiet}  # symbols whose book never changes
        self.ledger: deque[LedgerEntry] = deque(maxlen=ledger_size)
        self.conns: list[_Conn] = []
        self.connections_accepted = 0
        self.snapshot_requests = 0
        self.subscribe_requests = 0  # SUBSCRIBE messages received
        self.rate_limited = 0  # connections closed for sending too fast
        self._conn_counter = 0
        self._clock_ms = 1_700_000_000_000
        self._withhold: dict[str, int] = {}
        self._malformed = 0
        self._unknown = 0
        self._raw: deque[str] = deque()
        self._rest_failures: list[tuple[int, float]] = []
        self._stale_snapshots: list[int] = []
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self.base_url = ""

    # ------------------------------------------------------------ lifecycle

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_get("/stream", self._stream)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._task = asyncio.create_task(self._generate(), name="binance-sim")
        return self.base_url

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for c in list(self.conns):
            await c.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ the truth

    def true_book(
        self, symbol: str, update_id: int
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The book after ``update_id`` as floats (what our parser makes of the strings), best
        first."""
        bids, asks = self.books[symbol].book_at(update_id)
        return _float_levels(bids, True), _float_levels(asks, False)

    def step(self) -> list[tuple[str, str, str]]:
        """Advance every symbol one event; returns (stream, kind, text) messages to publish."""
        self._clock_ms += max(1, int(self.interval * 1000))
        out: list[tuple[str, str, str]] = []
        for sym, book in self.books.items():
            if sym in self.quiet:
                continue
            low = sym.lower()
            d = book.step(self.rng, self._clock_ms)
            data = {
                "e": "depthUpdate",
                "E": d.event_time,
                "s": sym,
                "U": d.first_id,
                "u": d.last_id,
                "b": [[price_str(p), qty_str(q)] for p, q in sorted(d.bids.items(), reverse=True)],
                "a": [[price_str(p), qty_str(q)] for p, q in sorted(d.asks.items())],
            }
            out.append((f"{low}@depth", "depth", json.dumps(data, separators=(",", ":"))))
            if self.rng.random() < self.trade_probability and book.bids:
                book.trade_id += 1
                maker_buy = self.rng.random() < 0.5
                px = max(book.bids) if maker_buy else min(book.asks or book.bids)
                trade = {
                    "e": "trade",
                    "E": self._clock_ms,
                    "s": sym,
                    "t": book.trade_id,
                    "p": price_str(px),
                    "q": qty_str(self.rng.randint(1, 50_000)),
                    "T": self._clock_ms - 1,
                    "m": maker_buy,
                    "M": True,
                }
                out.append((f"{low}@trade", "trade", json.dumps(trade, separators=(",", ":"))))
        return out

    # ------------------------------------------------------------ fault switches

    def inject_gap(self, symbol: str, count: int = 1) -> None:
        """Withhold the next ``count`` diffs of ``symbol`` from every connection."""
        self._withhold[symbol.upper()] = self._withhold.get(symbol.upper(), 0) + count

    async def drop_connections(self, abrupt: bool = False) -> int:
        """Close every stream connection (a close frame, as at the 24 h mark, or abruptly)."""
        conns = list(self.conns)
        for c in conns:
            if abrupt and c.request.transport is not None:
                c.request.transport.abort()
            else:
                await c.ws.close(code=1001, message=b"server closing")
        return len(conns)

    def stall(self, seconds: float) -> None:
        """Stop sending to the currently open connections for ``seconds`` (they stay open)."""
        until = time.monotonic() + seconds
        for c in self.conns:
            c.stalled_until = until

    def send_malformed(self, count: int = 1) -> None:
        self._malformed += count

    def send_unknown(self, count: int = 1) -> None:
        """Send an event kind nobody subscribed to (a bookTicker)."""
        self._unknown += count

    def send_raw(self, texts: Sequence[str]) -> None:
        """Send each of ``texts`` as it is (hostile input: anything at all) to every open
        connection, one per step, ahead of that step's genuine messages."""
        self._raw.extend(texts)

    def fail_rest(self, count: int = 1, status: int = 429, retry_after: float = 0.1) -> None:
        """Answer the next ``count`` depth requests with ``status`` (429, 418 or 5xx)."""
        self._rest_failures.extend([(status, retry_after)] * count)

    def serve_stale_snapshots(self, count: int = 1, lag: int = 10) -> None:
        """Answer the next ``count`` snapshots with the book ``lag`` diffs ago."""
        self._stale_snapshots.extend([lag] * count)

    # ------------------------------------------------------------ HTTP handlers

    async def _depth(self, request: web.Request) -> web.Response:
        self.snapshot_requests += 1
        if self._rest_failures:
            status, retry_after = self._rest_failures.pop(0)
            body = json.dumps({"code": -1003, "msg": "Too many requests; simulated limit."})
            self.ledger.append(LedgerEntry(time.monotonic(), 0, f"http_{status}", body))
            return web.Response(
                status=status,
                text=body,
                content_type="application/json",
                headers={"Retry-After": f"{retry_after:g}"},
            )
        symbol = request.query.get("symbol", "").upper()
        book = self.books.get(symbol)
        if book is None:
            body = json.dumps({"code": -1121, "msg": "Invalid symbol."})
            return web.Response(status=400, text=body, content_type="application/json")
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            limit = 100
        last_id, bids, asks = book.update_id, book.bids, book.asks
        if self._stale_snapshots:
            lag = self._stale_snapshots.pop(0)
            if len(book.history) > lag:
                last_id = book.history[-1 - lag].last_id
                bids, asks = book.book_at(last_id)
        body = json.dumps(
            {
                "lastUpdateId": last_id,
                "bids": [[price_str(p), qty_str(q)] for p, q in sorted(bids.items(), reverse=True)][
                    :limit
                ],
                "asks": [[price_str(p), qty_str(q)] for p, q in sorted(asks.items())][:limit],
            },
            separators=(",", ":"),
        )
        self.ledger.append(LedgerEntry(time.monotonic(), 0, "snapshot", body[:200]))
        return web.Response(text=body, content_type="application/json")

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("streams", "")
        streams = self._stream_set(raw.split("/")) if raw else set()
        if raw and not streams:
            return web.json_response({"code": -1121, "msg": "Invalid request."}, status=400)
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        self._conn_counter += 1
        self.connections_accepted += 1
        conn = _Conn(self._conn_counter, ws, request, streams)
        self.conns.append(conn)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
                if msg.type == WSMsgType.TEXT and not await self._control(conn, msg.data):
                    break
        finally:
            self.conns.remove(conn)
        return ws

    def _stream_set(self, names: Sequence[str]) -> set[str]:
        out = set()
        for name in names:
            sym, _, kind = str(name).partition("@")
            if sym.upper() in self.books and kind in ("depth", "depth@100ms", "trade"):
                out.add(f"{sym}@{'trade' if kind == 'trade' else 'depth'}")
        return out

    async def _control(self, conn: _Conn, text: str) -> bool:
        """A client message: SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS as Binance answers
        them. More than 5 messages in a second closes the connection (1008), as the venue does.
        Returns False when the connection was closed."""
        now = time.monotonic()
        conn.received.append(now)
        while conn.received and conn.received[0] < now - 1.0:
            conn.received.popleft()
        self.ledger.append(LedgerEntry(now, conn.number, "control", text[:200]))
        if len(conn.received) > 5:
            self.rate_limited += 1
            await conn.ws.close(code=1008, message=b"Too many requests")
            return False
        try:
            req = json.loads(text)
            method, rid = req["method"], req.get("id")
            params = req.get("params", [])
        except (ValueError, KeyError, TypeError):
            await conn.ws.send_str('{"error":{"code":3,"msg":"Invalid JSON"},"id":null}')
            return True
        if method == "SUBSCRIBE":
            conn.streams |= self._stream_set(params)
            self.subscribe_requests += 1
            result: object = None
        elif method == "UNSUBSCRIBE":
            conn.streams -= self._stream_set(params)
            result = None
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(conn.streams)
        else:
            await conn.ws.send_str(
                json.dumps({"error": {"code": 2, "msg": "Invalid request"}, "id": rid})
            )
            return True
        await conn.ws.send_str(json.dumps({"result": result, "id": rid}))
        return True

    # ------------------------------------------------------------ publishing

    async def _generate(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.interval
            await self._publish(self.step())
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def _publish(self, messages: list[tuple[str, str, str]]) -> None:
        now = time.monotonic()
        extra: list[tuple[str, str, str]] = []
        if self._malformed:
            self._malformed -= 1
            extra.append(("*", "malformed", '{"stream":"x@trade","data":{"e":"tra'))
        if self._unknown:
            self._unknown -= 1
            sym = next(iter(self.books))
            ticker = {"stream": f"{sym.lower()}@bookTicker", "data": {"u": 1, "s": sym}}
            extra.append(("*", "unknown", json.dumps(ticker)))
        if self._raw:
            extra.append(("*", "raw", self._raw.popleft()))
        for stream, kind, text in [*extra, *messages]:
            if kind == "depth":
                sym = stream.partition("@")[0].upper()
                if self._withhold.get(sym, 0) > 0:
                    self._withhold[sym] -= 1
                    self.ledger.append(LedgerEntry(now, 0, "withheld", text))
                    continue
                wrapped = f'{{"stream":"{stream}@100ms","data":{text}}}'
            elif kind == "trade":
                wrapped = f'{{"stream":"{stream}","data":{text}}}'
            else:
                wrapped = text
            for c in list(self.conns):
                if (stream != "*" and stream not in c.streams) or c.stalled_until > now:
                    continue
                if c.ws.closed:
                    continue
                try:
                    if kind == "raw" and not wrapped.isascii():
                        # Text that is not valid UTF-8 (a lone surrogate) cannot be a text frame:
                        # its bytes go as a binary frame, as a broken proxy might send them.
                        data = wrapped.encode("utf-8", "surrogatepass")
                        await c.ws.send_bytes(data)
                    else:
                        await c.ws.send_str(wrapped)
                except (ConnectionError, RuntimeError):
                    continue
                self.ledger.append(LedgerEntry(now, c.number, kind, wrapped))
