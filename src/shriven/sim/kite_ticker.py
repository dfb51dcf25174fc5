"""The ticker half of the loopback Kite simulator: a websocket speaking the real ticker protocol.

Mount :meth:`KiteTickerSimulator.handle` on an aiohttp app (``KiteSimulator`` serves it at
``/ws``). A client connects with ``?api_key=..&access_token=..`` (a wrong pair is refused with
HTTP 403 on the upgrade, as the real ticker does), sends the JSON control messages
``{"a": "subscribe" | "unsubscribe", "v": [tokens]}`` and ``{"a": "mode", "v": [mode, [tokens]]}``,
and receives binary messages of many packets in the real layouts: LTP, quote, full, and the
index layouts for tokens of the indices segment. Silence is filled with 1-byte heartbeats.

Prices follow a random walk per token from a generator seeded by ``(seed, token)``, so each
token's sequence of ticks is the same on every run whatever the interleaving. Every packet
sent is kept in :attr:`ledger` (per token, in order) so tests can check exactly-once delivery.
Faults: :meth:`drop_connections`, :meth:`stall`, :meth:`send_malformed`, revoking access
tokens (:attr:`access_tokens`), :meth:`send_text`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from aiohttp import WSMsgType, web

from shriven.events import KITE_MODES, KiteTick, kite_price_divisor
from shriven.feeds.kite.protocol import encode_message, encode_packet
from shriven.sim.surface import DEFAULT_SURFACE, PricedInstrument, VolSurface

__all__ = ["KiteTickerSimulator", "MalformedKind", "SentPacket"]

MalformedKind = Literal["bad_length", "count_overrun", "trailing_bytes"]

INDEX_SEGMENT: Final = 9
DERIVATIVE_SEGMENTS: Final = frozenset({2, 3, 5, 6, 7, 8, 12})
_MOVES: Final = (-2, -1, -1, 0, 0, 1, 1, 2)  # LTP steps in price ticks
DEFAULT_MODE: Final = "quote"  # what the real ticker streams after a bare subscribe


@dataclass(slots=True, frozen=True)
class SentPacket:
    connection: int
    tick: KiteTick  # recv_ns and seq are 0; the values encoded on the wire
    index_layout: bool


@dataclass(slots=True)
class _Instrument:
    """Random-walk state of one token."""

    token: int
    rng: random.Random
    step: int  # price tick in wire units
    last_price: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    oi: int = 0
    oi_high: int = 0
    oi_low: int = 0
    turnover: int = 0
    depth_qty: list[int] = field(default_factory=lambda: [100] * 10)  # 5 bid, then 5 ask levels
    depth_orders: list[int] = field(default_factory=lambda: [3] * 10)


@dataclass(slots=True)
class _Connection:
    id: int
    ws: web.WebSocketResponse
    request: web.Request
    modes: dict[int, str] = field(default_factory=dict)  # token -> mode, in subscribe order
    cursor: int = 0
    malformed: list[MalformedKind] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


class KiteTickerSimulator:
    def __init__(
        self,
        *,
        api_key: str = "sim_api_key",
        access_tokens: set[str] | None = None,
        seed: int = 0,
        ticks_per_second: float = 2_000.0,
        max_packets_per_message: int = 200,
        heartbeat_interval: float = 1.0,
        max_tokens_per_connection: int = 3000,
        max_connections_per_key: int = 3,
        text_interval: float | None = None,
        keep_ledger: bool = True,
        clock: Callable[[], float] = time.time,
        start_prices: Mapping[int, float] | None = None,
        pricing: Mapping[int, PricedInstrument] | None = None,
        surface: VolSurface = DEFAULT_SURFACE,
    ) -> None:
        self.api_key = api_key
        # Futures and options priced from their underlying's spot on ``surface`` instead of a
        # random walk of their own (KiteSimulator's instruments give them: see app/simulators).
        self.pricing: dict[int, PricedInstrument] = dict(pricing or {})
        self.surface = surface
        # token -> rupees to start that token's random walk at (e.g. the REST simulator's index
        # and futures prices, so the spot walks around the strikes the instruments list).
        self.start_prices: dict[int, float] = dict(start_prices or {})
        # Tokens the ticker accepts; the REST simulator adds the ones it issues.
        self.access_tokens: set[str] = (
            {"sim_access_token"} if access_tokens is None else access_tokens
        )
        self.seed = seed
        self.ticks_per_second = ticks_per_second
        self.max_packets_per_message = max_packets_per_message
        self.heartbeat_interval = heartbeat_interval
        self.max_tokens_per_connection = max_tokens_per_connection
        self.max_connections_per_key = max_connections_per_key
        self.text_interval = text_interval
        self.keep_ledger = keep_ledger
        self.clock = clock

        self.ledger: dict[int, list[SentPacket]] = {}
        self.control_log: list[tuple[int, dict[str, object]]] = []  # (connection, message)
        self.rejected: int = 0
        self.connections_opened: int = 0
        self.packets_sent: int = 0
        self.messages_sent: int = 0
        self.heartbeats_sent: int = 0
        self._ids = itertools.count(1)
        self._live: dict[int, _Connection] = {}
        self._instruments: dict[int, _Instrument] = {}
        self._stalled = asyncio.Event()
        self._stalled.set()  # set = streaming; cleared while stalled
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Serve the ticker alone on 127.0.0.1 (port chosen by the OS); returns its ws:// URL.
        (Inside the full Kite simulator, ``KiteSimulator`` mounts :meth:`handle` instead.)"""
        app = web.Application()
        app.router.add_get("/", self.handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"ws://127.0.0.1:{port}/"

    async def stop(self) -> None:
        self.resume()
        for conn in list(self._live.values()):
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ faults and controls

    @property
    def live_connections(self) -> int:
        return len(self._live)

    def subscriptions(self) -> dict[int, dict[int, str]]:
        """Connection id -> its token -> mode map, for the live connections."""
        return {c.id: dict(c.modes) for c in self._live.values()}

    async def drop_connections(self) -> None:
        """Close every live connection's TCP stream without a websocket close frame (what a
        network drop looks like). Bytes already written are flushed first."""
        for conn in list(self._live.values()):
            transport = conn.request.transport
            if transport is not None:
                transport.close()

    def move_price(self, token: int, rupees: float) -> None:
        """Jump ``token``'s price to ``rupees`` (a spot move); its random walk goes on from
        there, so the ticks that follow carry it to whoever is subscribed."""
        s = self._instrument(token)
        price = max(s.step, int(rupees * kite_price_divisor(token)) // s.step * s.step)
        s.last_price = price
        s.high = max(s.high, price)
        s.low = min(s.low, price)

    def stall(self) -> None:
        """Stop sending anything, heartbeats included, on every connection until resume()."""
        self._stalled.clear()

    def resume(self) -> None:
        self._stalled.set()

    def send_malformed(self, kind: MalformedKind = "bad_length") -> None:
        """The next data message on every live connection carries one malformed part. Its
        well-formed packets are still ledgered and must still reach the client."""
        for conn in self._live.values():
            conn.malformed.append(kind)

    def send_text(self, payload: dict[str, object]) -> None:
        """Queue a JSON text message (order update, error, message) to every live connection."""
        text = json.dumps(payload)
        for conn in self._live.values():
            conn.texts.append(text)

    def ledger_for(self, token: int) -> list[KiteTick]:
        return [p.tick for p in self.ledger.get(token, ())]

    # ------------------------------------------------------------ the websocket

    async def handle(self, request: web.Request) -> web.StreamResponse:
        api_key = request.query.get("api_key", "")
        token = request.query.get("access_token", "")
        if api_key != self.api_key or token not in self.access_tokens:
            self.rejected += 1
            raise web.HTTPForbidden(text="invalid api_key or access_token")
        same_key = [c for c in self._live.values() if c.request.query.get("api_key") == api_key]
        if len(same_key) >= self.max_connections_per_key:
            self.rejected += 1
            raise web.HTTPTooManyRequests(text="too many ticker connections for this api_key")

        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = _Connection(next(self._ids), ws, request)
        self._live[conn.id] = conn
        self.connections_opened += 1
        streamer = asyncio.create_task(self._stream(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._control(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            del self._live[conn.id]
            streamer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await streamer
        return ws

    def _control(self, conn: _Connection, text: str) -> None:
        try:
            msg = json.loads(text)
            action, value = msg["a"], msg["v"]
        except (ValueError, KeyError, TypeError):
            conn.texts.append(json.dumps({"type": "error", "data": "invalid message"}))
            return
        self.control_log.append((conn.id, msg))
        if action == "subscribe":
            for token in value:
                if token in conn.modes:
                    continue
                if len(conn.modes) >= self.max_tokens_per_connection:
                    conn.texts.append(
                        json.dumps({"type": "error", "data": "maximum instruments reached"})
                    )
                    break
                conn.modes[int(token)] = DEFAULT_MODE
        elif action == "unsubscribe":
            for token in value:
                conn.modes.pop(int(token), None)
        elif action == "mode" and value and value[0] in KITE_MODES:
            mode, tokens = value[0], value[1]
            for token in tokens:
                if int(token) in conn.modes:
                    conn.modes[int(token)] = mode
        else:
            conn.texts.append(json.dumps({"type": "error", "data": f"unknown action {action}"}))

    async def _stream(self, conn: _Connection) -> None:
        ws = conn.ws
        rate = self.ticks_per_second
        last = last_send = last_text = time.monotonic()
        due = 0.0  # packets owed at the configured rate
        while not ws.closed:
            if not self._stalled.is_set():
                await self._stalled.wait()
                last = time.monotonic()  # no burst to make up for the stall
            now = time.monotonic()
            while conn.texts:
                await ws.send_str(conn.texts.pop(0))
                last_send = now
            if self.text_interval is not None and now - last_text >= self.text_interval:
                last_text = now
                await ws.send_str(json.dumps({"type": "message", "data": "simulator notice"}))
            if conn.modes:
                due = min(due + (now - last) * rate, 10.0 * self.max_packets_per_message)
            else:
                due = 0.0
            last = now
            count = min(int(due), self.max_packets_per_message)
            if count:
                due -= count
                message, sent = self._message(conn, count)
                await ws.send_bytes(message)
                # ledgered only once written: a send on a dropped connection raises first
                self.packets_sent += count
                self.messages_sent += 1
                if self.keep_ledger:
                    for p in sent:
                        self.ledger.setdefault(p.tick.instrument_token, []).append(p)
                last_send = now
            elif now - last_send >= self.heartbeat_interval:
                await ws.send_bytes(b"\x00")
                self.heartbeats_sent += 1
                last_send = now
            if due >= self.max_packets_per_message:
                await asyncio.sleep(0)  # behind: send the next batch straight away
            else:
                # wait for the next packet, but at least 5 ms so fast rates batch many packets
                # per message, and at most 50 ms so heartbeats and faults stay prompt
                await asyncio.sleep(min(max(0.005, (1.0 - due) / rate), 0.05))

    def _message(self, conn: _Connection, count: int) -> tuple[bytes, list[SentPacket]]:
        tokens = list(conn.modes)
        packets: list[bytes] = []
        sent: list[SentPacket] = []
        now = int(self.clock())
        for _ in range(count):
            token = tokens[conn.cursor % len(tokens)]
            conn.cursor += 1
            tick = self._next_tick(token, conn.modes[token], now)
            index_layout = token & 0xFF == INDEX_SEGMENT
            packets.append(encode_packet(tick, index=index_layout))
            sent.append(SentPacket(conn.id, tick, index_layout))
        message = encode_message(packets)
        if conn.malformed:
            message = _corrupt(message, conn.malformed.pop(0), len(packets))
        return message, sent

    # ------------------------------------------------------------ market model

    def _instrument(self, token: int) -> _Instrument:
        inst = self._instruments.get(token)
        if inst is None:
            rng = random.Random(f"{self.seed}:{token}")
            divisor = kite_price_divisor(token)
            step = max(1, divisor // 20)  # 0.05 in paise segments, 0.0025 in currency ones
            segment = token & 0xFF
            if segment == INDEX_SEGMENT:
                rupees = rng.uniform(15_000, 50_000)
            elif segment in (3, 6):
                rupees = rng.uniform(70, 100)
            else:
                rupees = rng.uniform(50, 3_000)
            rupees = self.start_prices.get(token, rupees)
            price = int(rupees * divisor) // step * step
            inst = _Instrument(token, rng, step, price, price, price, price, price)
            if segment in DERIVATIVE_SEGMENTS:
                inst.oi = inst.oi_high = inst.oi_low = rng.randrange(10_000, 5_000_000)
            self._instruments[token] = inst
        return inst

    def _next_tick(self, token: int, mode: str, now: int) -> KiteTick:
        # random() scaled by hand: randrange() per field made this the simulator's bottleneck
        s = self._instrument(token)
        r = s.rng.random
        step = s.step
        ltp = s.last_price = max(step, s.last_price + _MOVES[int(r() * 8)] * step)
        priced = self.pricing.get(token)
        theo = 0
        if priced is not None:
            # round to the tick below: the quote brackets the theoretical price (bid <= theo < ask)
            theo = self._theoretical(priced, kite_price_divisor(token), now)
            ltp = s.last_price = max(step, theo // step * step)
        if ltp > s.high:
            s.high = ltp
        elif ltp < s.low:
            s.low = ltp
        qty = 1 + int(r() * 499)
        s.volume += qty
        s.turnover += qty * ltp
        if s.oi:
            s.oi = max(1, s.oi + int(r() * 1001) - 500)
            s.oi_high, s.oi_low = max(s.oi_high, s.oi), min(s.oi_low, s.oi)
        if mode == "ltp":
            return KiteTick(0, 0, token, "ltp", ltp)
        tick = KiteTick(0, 0, token, mode, ltp, open=s.open, high=s.high, low=s.low, close=s.close)
        if token & 0xFF == INDEX_SEGMENT:
            tick.exchange_timestamp = now if mode == "full" else 0
            tick.change = max(-(2**31), min(2**31 - 1, ltp - s.close)) if s.close else 0
            return tick
        tick.last_traded_quantity = qty
        tick.average_traded_price = s.turnover // s.volume
        tick.volume_traded = s.volume
        tick.total_buy_quantity = 10_000 + int(r() * 990_000)
        tick.total_sell_quantity = 10_000 + int(r() * 990_000)
        if mode == "full":
            tick.last_trade_time = tick.exchange_timestamp = now
            tick.oi, tick.oi_day_high, tick.oi_day_low = s.oi, s.oi_high, s.oi_low
            q, o = s.depth_qty, s.depth_orders
            for _ in range(2):  # the book drifts: two levels change size per tick
                i = int(r() * 10)
                q[i] = 1 + int(r() * 1999)
                o[i] = 1 + int(r() * 29)
            # best bid at or one tick under the LTP; a priced one's at or under its theoretical
            # price (0, no bid, for an option worth under a tick)
            b = theo // step * step if priced is not None else ltp - step if r() < 0.5 else ltp
            a = b + step
            tick.bids = (
                (b, q[0], o[0]),
                (b - step, q[1], o[1]),
                (b - 2 * step, q[2], o[2]),
                (b - 3 * step, q[3], o[3]),
                (b - 4 * step, q[4], o[4]),
            )
            if b < 5 * step:  # a cheap option: no bid levels at or below zero
                tick.bids = tuple((p, n, c) if p > 0 else (0, 0, 0) for p, n, c in tick.bids)
            tick.asks = (
                (a, q[5], o[5]),
                (a + step, q[6], o[6]),
                (a + 2 * step, q[7], o[7]),
                (a + 3 * step, q[8], o[8]),
                (a + 4 * step, q[9], o[9]),
            )
        return tick

    def _theoretical(self, priced: PricedInstrument, divisor: int, now: int) -> int:
        """The surface's price of ``priced`` at ``now`` (epoch seconds), in wire units."""
        spot = self._instrument(priced.spot_token)
        rupees = spot.last_price / kite_price_divisor(priced.spot_token)
        return int(self.surface.price(rupees, priced, now * 1_000_000_000) * divisor)


def _corrupt(message: bytes, kind: MalformedKind, count: int) -> bytes:
    if kind == "bad_length":  # one extra packet of a length no kind has, after the good ones
        bad = b"\xde\xad\xbe\xef" * 3 + b"\x00"
        return (count + 1).to_bytes(2, "big") + message[2:] + len(bad).to_bytes(2, "big") + bad
    if kind == "count_overrun":
        return (count + 3).to_bytes(2, "big") + message[2:]
    return message + b"\x00\x07\x01"  # trailing bytes
