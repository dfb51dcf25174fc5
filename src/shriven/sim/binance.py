"""A loopback Binance exchange: spot, or USD-M / COIN-M futures (``venue=``). REST depth
snapshots, exchangeInfo and (futures) open interest, and the combined websocket stream.

Futures mode speaks fapi/dapi and fstream/dstream: update ids are shared by every symbol (so a
symbol's ``U`` jumps past its previous ``u``) and each diff names its predecessor's ``u`` as
``pu``; the streams are depth at any documented speed, aggTrade, bookTicker, markPrice@1s and
forceOrder; REST answers carry ``X-MBX-USED-WEIGHT-1M``. Spot mode is unchanged (its sequence
depends only on the seed), with bookTicker and aggTrade offered besides.

It keeps, per symbol, a random-walk L2 book (the truth) and every diff it produced, so a test
can ask for the true book at any update id it reached. The sequence of books, diffs and trades
depends only on the seed; timing depends on the event loop. Streams are chosen in the URL
(``/stream?streams=...``) and with SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS messages, answered
as Binance does; a client sending more than 5 messages a second is disconnected (1008). Fault
switches: withhold a diff
(sequence gap), drop connections, stall the stream, send malformed JSON or an unsubscribed kind,
answer snapshots with 429 or with an older book, move a whole book at once (a planted basis
against another venue's book of the same symbol).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from aiohttp import WSMsgType, web

from shriven.events import (
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceDepth,
    BinanceForceOrder,
    BinanceFuturesDepth,
    BinanceMarkPrice,
    BinanceTrade,
)
from shriven.feeds.binance.wire import (
    agg_trade_event,
    book_ticker_event,
    combined,
    depth_event,
    force_order_event,
    futures_depth_event,
    levels_json,
    mark_price_event,
    trade_event,
)

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
    prev_id: int = 0  # the previous diff's last_id (futures' pu)


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
    # Futures: ids other symbols take between two of this one's diffs (0 on spot).
    id_skip: int = 0

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
        prev = self.update_id
        first = self.update_id + 1 + self.id_skip
        self.update_id = first + rng.randint(0, 3)
        return self._keep(_Diff(first, self.update_id, event_ms, bids_ch, asks_ch, prev))

    def shift(self, ticks: int, event_ms: int) -> _Diff:
        """Move every level by ``ticks`` in one diff (no random draw: the seed's sequence of
        the other symbols is unchanged)."""
        bids_ch = dict.fromkeys(self.bids, 0)
        asks_ch = dict.fromkeys(self.asks, 0)
        self.bids = {p + ticks: q for p, q in self.bids.items()}
        self.asks = {p + ticks: q for p, q in self.asks.items()}
        bids_ch.update(self.bids)
        asks_ch.update(self.asks)
        self.mid += ticks
        prev = self.update_id
        self.update_id = prev + 1 + self.id_skip
        return self._keep(_Diff(self.update_id, self.update_id, event_ms, bids_ch, asks_ch, prev))

    def _keep(self, diff: _Diff) -> _Diff:
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


def _str_levels(side: dict[int, int], reverse: bool) -> tuple[tuple[str, str], ...]:
    """Levels as Binance's decimal strings, best first."""
    return tuple((price_str(p), qty_str(q)) for p, q in sorted(side.items(), reverse=reverse))


def _float_levels(side: dict[int, int], reverse: bool) -> list[tuple[float, float]]:
    return [
        (float(price_str(p)), float(qty_str(q))) for p, q in sorted(side.items(), reverse=reverse)
    ]


@dataclass(eq=False)
class _Conn:
    number: int
    ws: web.WebSocketResponse
    request: web.Request
    streams: dict[str, str]  # canonical "<sym>@<kind>" -> the stream name the client asked for
    stalled_until: float = 0.0
    received: deque[float] = field(default_factory=deque)  # times of the client's messages
    closing: bool = False  # a close was started: nothing more is sent on it


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
        venue: str = "binance",
    ) -> None:
        if venue not in _PATHS:
            raise ValueError(f"unknown venue {venue!r}: use one of {sorted(_PATHS)}")
        self.venue = venue
        self.futures = venue != "binance"
        self.rng = random.Random(seed)
        # Draws for what spot never had (futures id skips, tickers, mark prices, liquidations):
        # a second generator, so the spot sequence of a seed stays what it always was.
        self.extra_rng = random.Random(seed + 1_000_003)
        self.interval = interval_ms / 1000.0
        self.trade_probability = trade_probability
        self.books: dict[str, SimBook] = {}
        for i, s in enumerate(symbols):
            book = SimBook(s.upper(), _START_MID[i % len(_START_MID)], levels, max_history)
            book.seed_levels(self.rng)
            if self.futures:
                book.update_id = 600_000_000_000 + i * 1_000
                book.start_id = book.update_id
                book.id_skip = 7 * (i + 1)
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
        self._liquidations = 0
        self._shifts: dict[str, int] = {}
        self.weight_used = 0  # REST weight in the current minute (X-MBX-USED-WEIGHT-1M)
        self._weight_minute = 0
        self.open_interest_requests = 0
        self.exchange_info_requests = 0
        self.delivered: set[str] = set()  # contracts listed as DELIVERED by exchangeInfo
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self.base_url = ""

    # ------------------------------------------------------------ lifecycle

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1)

    async def start(self) -> str:
        app = web.Application()
        paths = _PATHS[self.venue]
        app.router.add_get(paths["depth"], self._depth)
        app.router.add_get(paths["exchangeInfo"], self._exchange_info)
        if self.futures:
            app.router.add_get(paths["openInterest"], self._open_interest)
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
            shift = self._shifts.pop(sym, 0)
            d = book.shift(shift, self._clock_ms) if shift else book.step(self.rng, self._clock_ms)
            bids = _str_levels(d.bids, True)
            asks = _str_levels(d.asks, False)
            if self.futures:
                text = futures_depth_event(
                    BinanceFuturesDepth(0, 0, self.venue, sym, d.first_id, d.last_id, d.prev_id,
                                        d.event_time, d.event_time - 2, bids, asks)
                )  # fmt: skip
            else:
                text = depth_event(
                    BinanceDepth(0, 0, sym, d.first_id, d.last_id, d.event_time, bids, asks)
                )
            out.append((f"{low}@depth", "depth", text))
            out.append((f"{low}@bookTicker", "bookTicker", self._book_ticker(book)))
            if self.futures:
                out.extend(self._futures_extras(book))
                if self.rng.random() < self.trade_probability and book.bids:
                    out.append((f"{low}@aggTrade", "aggTrade", self._agg_trade(book)))
                continue
            if self.rng.random() < self.trade_probability and book.bids:
                book.trade_id += 1
                maker_buy = self.rng.random() < 0.5
                px = max(book.bids) if maker_buy else min(book.asks or book.bids)
                trade = BinanceTrade(
                    0, 0, sym, book.trade_id, price_str(px),
                    qty_str(self.rng.randint(1, 50_000)), self._clock_ms - 1, self._clock_ms,
                    maker_buy,
                )  # fmt: skip
                out.append((f"{low}@trade", "trade", trade_event(trade)))
                agg = BinanceAggTrade(
                    0, 0, "binance", sym, book.trade_id, trade.price, trade.quantity,
                    book.trade_id, book.trade_id, trade.trade_time, trade.event_time, maker_buy,
                )  # fmt: skip
                out.append((f"{low}@aggTrade", "aggTrade", agg_trade_event(agg)))
        return out

    def _book_ticker(self, book: SimBook) -> str:
        bid = max(book.bids) if book.bids else 0
        ask = min(book.asks) if book.asks else 0
        e, t = (self._clock_ms, self._clock_ms - 1) if self.futures else (0, 0)
        ticker = BinanceBookTicker(
            0, 0, self.venue, book.symbol, book.update_id, price_str(bid),
            qty_str(book.bids.get(bid, 0)), price_str(ask), qty_str(book.asks.get(ask, 0)), e, t,
        )  # fmt: skip
        return book_ticker_event(ticker)

    def _agg_trade(self, book: SimBook) -> str:
        rng = self.extra_rng
        book.trade_id += 1
        maker_buy = rng.random() < 0.5
        px = max(book.bids) if maker_buy else min(book.asks or book.bids)
        first = book.trade_id * 3
        qty = qty_str(rng.randint(1, 50_000))
        last = first + rng.randint(0, 2)
        agg = BinanceAggTrade(
            0, 0, self.venue, book.symbol, book.trade_id, price_str(px), qty, first, last,
            self._clock_ms - 1, self._clock_ms, maker_buy,
        )  # fmt: skip
        return agg_trade_event(agg)

    def _futures_extras(self, book: SimBook) -> list[tuple[str, str, str]]:
        """markPrice@1s once a simulated second, a liquidation now and then (or when asked)."""
        low = book.symbol.lower()
        out: list[tuple[str, str, str]] = []
        rng = self.extra_rng
        if self._clock_ms // 1000 != (self._clock_ms - max(1, int(self.interval * 1000))) // 1000:
            mid = price_str(book.mid)
            perpetual = _contract_type(book.symbol, list(self.books)) == "PERPETUAL"
            rate = f"{rng.uniform(-0.0005, 0.0005):.8f}" if perpetual else ""
            funding = (self._clock_ms // 28_800_000 + 1) * 28_800_000 if perpetual else 0
            mark = BinanceMarkPrice(
                0, 0, self.venue, book.symbol, event_time=self._clock_ms, mark_price=mid,
                index_price=price_str(book.mid + rng.randint(-2, 2)), estimated_settle_price=mid,
                funding_rate=rate, next_funding_time=funding,
            )  # fmt: skip
            out.append((f"{low}@markPrice", "markPrice", mark_price_event(mark)))
        if self._liquidations or rng.random() < 0.01:
            self._liquidations = max(0, self._liquidations - 1)
            side = rng.choice(("BUY", "SELL"))
            q = qty_str(rng.randint(1, 10_000))
            px = price_str(book.mid)
            force = BinanceForceOrder(
                0, 0, self.venue, book.symbol, event_time=self._clock_ms, side=side,
                order_type="LIMIT", time_in_force="IOC", quantity=q, price=px, average_price=px,
                status="FILLED", last_filled_quantity=q, filled_quantity=q,
                trade_time=self._clock_ms - 1,
            )  # fmt: skip
            out.append((f"{low}@forceOrder", "forceOrder", force_order_event(force)))
        return out

    # ------------------------------------------------------------ fault switches

    def shift_book(self, symbol: str, ticks: int) -> None:
        """Move ``symbol``'s whole book by ``ticks`` at its next step, in place of a random one
        (a basis planted against another venue's book of the same pair)."""
        self._shifts[symbol.upper()] = self._shifts.get(symbol.upper(), 0) + ticks

    def send_liquidations(self, count: int = 1) -> None:
        """Futures: send a forceOrder for the next ``count`` symbol steps."""
        self._liquidations += count

    def inject_gap(self, symbol: str, count: int = 1) -> None:
        """Withhold the next ``count`` diffs of ``symbol`` from every connection."""
        self._withhold[symbol.upper()] = self._withhold.get(symbol.upper(), 0) + count

    async def drop_connections(self, abrupt: bool = False) -> int:
        """Close every stream connection (a close frame, as at the 24 h mark, or abruptly)."""
        conns = list(self.conns)
        for c in conns:
            c.closing = True
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

    def _weigh(self, weight: int) -> dict[str, str]:
        """Count ``weight`` in the current minute; the header Binance sends with the total."""
        minute = int(time.time() // 60)
        if minute != self._weight_minute:
            self._weight_minute = minute
            self.weight_used = 0
        self.weight_used += weight
        return {"X-MBX-USED-WEIGHT-1M": str(self.weight_used)}

    async def _exchange_info(self, request: web.Request) -> web.Response:
        self.exchange_info_requests += 1
        symbols = []
        names = list(self.books)
        for sym in names:
            row: dict[str, object] = {
                "symbol": sym,
                "status": "DELIVERED" if sym in self.delivered else "TRADING",
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": price_str(1)},
                    {"filterType": "LOT_SIZE", "stepSize": qty_str(1)},
                ],
            }
            if self.futures:
                # A delivered contract keeps its type; the others move up past it.
                live = [n for n in names if n not in self.delivered or n == sym]
                ctype = _contract_type(sym, live)
                row["contractType"] = ctype
                row["pair"] = sym.partition("_")[0]
                row["deliveryDate"] = _delivery_ms(sym)
                if self.venue == "binance-coinm":
                    row["contractStatus"] = row.pop("status")
                    row["contractSize"] = 100 if sym.startswith("BTC") else 10
            symbols.append(row)
        weight = 1 if self.futures else 20
        body = {
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 2400 if self.futures else 6000,
                }
            ],
            "symbols": symbols,
        }
        return web.json_response(body, headers=self._weigh(weight))

    async def _open_interest(self, request: web.Request) -> web.Response:
        self.open_interest_requests += 1
        symbol = request.query.get("symbol", "").upper()
        book = self.books.get(symbol)
        if book is None:
            body = json.dumps({"code": -1121, "msg": "Invalid symbol."})
            return web.Response(status=400, text=body, content_type="application/json")
        oi = {"symbol": symbol, "openInterest": qty_str(10_000_000 + book.update_id % 100_000)}
        if self.venue == "binance-coinm":
            oi["pair"] = symbol.partition("_")[0]
            oi["contractType"] = _contract_type(symbol, list(self.books))
        oi["time"] = self._clock_ms
        return web.json_response(oi, headers=self._weigh(1))

    def snapshot_body(self, symbol: str, limit: int = 1000, lag: int = 0) -> str:
        """The REST depth answer for ``symbol`` now (``lag`` diffs old, when it has them)."""
        book = self.books[symbol]
        last_id, bids, asks = book.update_id, book.bids, book.asks
        if lag and len(book.history) > lag:
            last_id = book.history[-1 - lag].last_id
            bids, asks = book.book_at(last_id)
        head = f'"lastUpdateId":{last_id}'
        if self.futures:
            head += f',"E":{self._clock_ms},"T":{self._clock_ms - 1}'
        b = levels_json(_str_levels(bids, True)[:limit])
        a = levels_json(_str_levels(asks, False)[:limit])
        return f'{{{head},"bids":{b},"asks":{a}}}'

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
        lag = self._stale_snapshots.pop(0) if self._stale_snapshots else 0
        body = self.snapshot_body(symbol, limit, lag)
        self.ledger.append(LedgerEntry(time.monotonic(), 0, "snapshot", body[:200]))
        weight = 20 if limit > 500 else 10 if limit > 100 else 5
        return web.Response(text=body, content_type="application/json", headers=self._weigh(weight))

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("streams", "")
        streams = self._stream_set(raw.split("/")) if raw else {}
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

    def _stream_set(self, names: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        kinds = _FUTURES_STREAMS if self.futures else _SPOT_STREAMS
        for name in names:
            sym, _, kind = str(name).partition("@")
            canonical = kinds.get(kind)
            if sym.upper() in self.books and canonical is not None:
                out[f"{sym}@{canonical}"] = str(name)
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
            conn.streams.update(self._stream_set(params))
            self.subscribe_requests += 1
            result: object = None
        elif method == "UNSUBSCRIBE":
            for name in self._stream_set(params):
                conn.streams.pop(name, None)
            result = None
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(conn.streams.values())
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
            for c in list(self.conns):
                if (stream != "*" and stream not in c.streams) or c.stalled_until > now:
                    continue
                if c.ws.closed or c.closing:
                    continue
                # named as the client asked (the speed suffix included)
                wrapped = combined(c.streams[stream], text) if stream != "*" else text
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


_PATHS: Final = {
    "binance": {"depth": "/api/v3/depth", "exchangeInfo": "/api/v3/exchangeInfo"},
    "binance-usdm": {
        "depth": "/fapi/v1/depth",
        "exchangeInfo": "/fapi/v1/exchangeInfo",
        "openInterest": "/fapi/v1/openInterest",
    },
    "binance-coinm": {
        "depth": "/dapi/v1/depth",
        "exchangeInfo": "/dapi/v1/exchangeInfo",
        "openInterest": "/dapi/v1/openInterest",
    },
}
# stream kind as asked -> the kind a connection is subscribed to
_SPOT_STREAMS: Final = {
    "depth": "depth",
    "depth@100ms": "depth",
    "trade": "trade",
    "aggTrade": "aggTrade",
    "bookTicker": "bookTicker",
}
_FUTURES_STREAMS: Final = {
    "depth": "depth",
    "depth@0ms": "depth",
    "depth@100ms": "depth",
    "depth@500ms": "depth",
    "aggTrade": "aggTrade",
    "bookTicker": "bookTicker",
    "markPrice": "markPrice",
    "markPrice@1s": "markPrice",
    "forceOrder": "forceOrder",
}


def _delivery_ms(symbol: str) -> int:
    """A dated contract's delivery (08:00 UTC of its YYMMDD suffix), 0 for a perpetual."""
    suffix = symbol.rpartition("_")[2]
    if len(suffix) != 6 or not suffix.isdigit():
        return 0
    import datetime as dt

    day = dt.datetime.strptime(suffix, "%y%m%d").replace(hour=8, tzinfo=dt.UTC)
    return int(day.timestamp() * 1000)


def _contract_type(symbol: str, symbols: Sequence[str]) -> str:
    """PERPETUAL, or CURRENT_QUARTER / NEXT_QUARTER by delivery order within the pair."""
    when = _delivery_ms(symbol)
    if not when:
        return "PERPETUAL"
    pair = symbol.partition("_")[0]
    dated = sorted(
        _delivery_ms(s) for s in symbols if s.partition("_")[0] == pair and _delivery_ms(s)
    )
    return "CURRENT_QUARTER" if dated.index(when) == 0 else "NEXT_QUARTER"
