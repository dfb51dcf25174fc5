"""Kite ticker websocket adapter: subscriptions, sharding, reconnects, records to the sink.

One :class:`KiteTickerFeed` holds the wanted subscriptions (token -> mode) spread over up to
``max_connections`` websocket connections (shards) of up to ``max_tokens_per_connection``
tokens each; the venue allows 3000 and 3 per API key. Each shard connects, subscribes and sets
modes, then reads until the connection drops, errors, or stays silent (no data and no
heartbeat) for ``heartbeat_timeout`` seconds; it then writes a DISCONNECTED status, waits an
exponentially growing, jittered delay and reconnects with every subscription re-sent.

Records: every tick parsed (recv_ns taken when the message arrived), every text message as a
VENUE_MESSAGE status, CONNECTED/DISCONNECTED per shard, SUBSCRIPTIONS_CHANGED per
:meth:`KiteTickerFeed.update_subscriptions`. All share the ``kite`` sequence counter. ``on_ticks``
(optional) sees the ticks of each binary message as parsed, before they go to the sink: the
universe job watches spot prices through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from shriven.errors import CredentialsError, TickerLimitError
from shriven.events import (
    KITE_MODES,
    KiteTick,
    SeqCounter,
    Status,
    StatusKind,
    now_ns,
    status_detail,
)
from shriven.feeds.base import FeedStats, RecordSink
from shriven.feeds.kite.instruments import INSTRUMENT_CLASSES, instrument_class
from shriven.feeds.kite.protocol import (
    MAX_CONNECTIONS_PER_KEY,
    MAX_TOKENS_PER_CONNECTION,
    parse_message,
    parse_text,
)
from shriven.logging import get_logger

if TYPE_CHECKING:
    from shriven.config import Settings

__all__ = [
    "INSTRUMENT_CLASSES",
    "MAX_CONNECTIONS_PER_KEY",
    "MAX_TOKENS_PER_CONNECTION",
    "AccessTokenProvider",
    "KiteTickerFeed",
    "instrument_class",
    "modes_for",
]

log = get_logger(__name__)

VENUE: Final = "kite"

TickTap = Callable[[Sequence[KiteTick]], None]


class AccessTokenProvider(Protocol):
    """Gives the Kite access token; ``refresh=True`` asks for a fresh login (the ticker refused
    the current one). May be a plain or an async callable."""

    def __call__(self, *, refresh: bool = False) -> str | Awaitable[str]: ...


def modes_for(
    tokens_by_class: Mapping[str, Iterable[int]],
    default_mode: str = "full",
    class_modes: Mapping[str, str] | None = None,
) -> dict[int, str]:
    """token -> mode for a subscription: the class's mode from ``class_modes``, else the
    default. Use the result with :meth:`KiteTickerFeed.update_subscriptions`."""
    class_modes = class_modes or {}
    out: dict[int, str] = {}
    for cls, tokens in tokens_by_class.items():
        mode = class_modes.get(cls, default_mode)
        for token in tokens:
            out[int(token)] = mode
    return out


@dataclass(slots=True, eq=False)
class _Shard:
    index: int
    modes: dict[int, str] = field(default_factory=dict)
    ws: ClientConnection | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None


class KiteTickerFeed:
    """FeedAdapter for the Kite ticker. ``run()`` streams until cancelled; it raises
    CredentialsError when the ticker refuses a freshly obtained access token."""

    venue = VENUE

    def __init__(
        self,
        ws_url: str,
        api_key: str,
        access_token_provider: AccessTokenProvider,
        sink: RecordSink,
        *,
        subscriptions: Mapping[int, str] | None = None,
        seq: SeqCounter | None = None,
        stats: FeedStats | None = None,
        reconnect_min_secs: float = 0.5,
        reconnect_max_secs: float = 30.0,
        heartbeat_timeout_secs: float = 10.0,
        connect_timeout_secs: float = 10.0,
        max_tokens_per_connection: int = MAX_TOKENS_PER_CONNECTION,
        max_connections: int = MAX_CONNECTIONS_PER_KEY,
        default_mode: str = "full",
        class_modes: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
        on_ticks: TickTap | None = None,
    ) -> None:
        self.ws_url = ws_url
        self._api_key = api_key
        self._provider = access_token_provider
        self._sink = sink
        self._on_ticks = on_ticks
        self.seq = seq or SeqCounter()
        self.stats = stats or FeedStats(VENUE)
        self.reconnect_min_secs = reconnect_min_secs
        self.reconnect_max_secs = reconnect_max_secs
        self.heartbeat_timeout_secs = heartbeat_timeout_secs
        self.connect_timeout_secs = connect_timeout_secs
        self.max_tokens_per_connection = max_tokens_per_connection
        self.max_connections = max_connections
        self.default_mode = default_mode
        self.class_modes = dict(class_modes or {})
        self._rng = rng or random.Random()
        self._shards: list[_Shard] = []
        self._token: str | None = None
        self._token_lock = asyncio.Lock()  # shards starting together log in once
        self._failure: asyncio.Future[None] | None = None
        if subscriptions:
            self._plan(dict(subscriptions), [])

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        access_token_provider: AccessTokenProvider,
        sink: RecordSink,
        *,
        subscriptions: Mapping[int, str] | None = None,
        seq: SeqCounter | None = None,
        on_ticks: TickTap | None = None,
    ) -> KiteTickerFeed:
        settings.require("zerodha_api_key")
        assert settings.zerodha_api_key is not None
        return cls(
            settings.kite_ws_url,
            settings.zerodha_api_key.get_secret_value(),
            access_token_provider,
            sink,
            subscriptions=subscriptions,
            seq=seq,
            reconnect_min_secs=settings.kite_reconnect_min_secs,
            reconnect_max_secs=settings.kite_reconnect_max_secs,
            heartbeat_timeout_secs=settings.kite_heartbeat_timeout_secs,
            default_mode=settings.kite_ticker_mode,
            class_modes=settings.kite_ticker_class_modes,
            on_ticks=on_ticks,
        )

    def modes_for(self, tokens_by_class: Mapping[str, Iterable[int]]) -> dict[int, str]:
        """token -> mode for tokens grouped by :func:`instrument_class`, using this feed's
        default and per-class modes (settings ``kite_ticker_mode``, ``kite_ticker_class_modes``)."""
        return modes_for(tokens_by_class, self.default_mode, self.class_modes)

    # ------------------------------------------------------------ subscriptions

    @property
    def subscriptions(self) -> dict[int, str]:
        """Every wanted token and its mode, across shards."""
        return {t: m for s in self._shards for t, m in s.modes.items()}

    @property
    def shard_count(self) -> int:
        return len(self._shards)

    def _plan(self, subscribe: dict[int, str], unsubscribe: list[int]) -> list[_Shard]:
        """Apply a diff to the shards' wanted state; returns shards created. Raises
        TickerLimitError, changing nothing, when the result would not fit."""
        for token, mode in subscribe.items():
            if mode not in KITE_MODES:
                raise ValueError(
                    f"unknown Kite mode {mode!r} for token {token}: use ltp, quote or full"
                )
        current = self.subscriptions
        drop = set(unsubscribe) - set(subscribe)
        new = [t for t in subscribe if t not in current]
        total = len(current) - len(drop & current.keys()) + len(new)
        limit = self.max_tokens_per_connection * self.max_connections
        if total > limit:
            raise TickerLimitError(
                f"Kite ticker subscription of {total} instruments exceeds the limit of "
                f"{self.max_connections} connections x {self.max_tokens_per_connection} "
                f"instruments = {limit} per API key; subscribe fewer (e.g. a narrower strike "
                "range) or use another API key"
            )
        for shard in self._shards:
            for token in drop:
                shard.modes.pop(token, None)
            for token, mode in subscribe.items():
                if token in shard.modes:
                    shard.modes[token] = mode
        created: list[_Shard] = []
        for token in new:
            shard = min(
                (s for s in self._shards if len(s.modes) < self.max_tokens_per_connection),
                key=lambda s: len(s.modes),
                default=None,
            )
            if shard is None:
                shard = _Shard(len(self._shards))
                self._shards.append(shard)
                created.append(shard)
            shard.modes[token] = subscribe[token]
        return created

    async def record_subscriptions(self, reason: str = "initial") -> None:
        """Write one SUBSCRIPTIONS_CHANGED status listing every current subscription and its
        mode (``reason`` "initial" at start-up), so the WAL says what was asked for, not only
        what changed. Sends nothing to the ticker."""
        subs = self.subscriptions
        detail = {
            "reason": reason,
            "subscribe": sorted(subs),
            "unsubscribe": [],
            "modes": {m: sorted(ts) for m, ts in _by_mode(subs).items()},
            "shards": [len(s.modes) for s in self._shards],
        }
        await self._status(StatusKind.SUBSCRIPTIONS_CHANGED, status_detail(**detail))

    async def update_subscriptions(
        self,
        subscribe: dict[int, str],
        unsubscribe: list[int],
        *,
        reason: str = "",
        symbol: str = "",
    ) -> None:
        """Subscribe ``subscribe`` (token -> mode; a mode change for tokens already subscribed)
        and unsubscribe ``unsubscribe``, on the live connections without reconnecting. Records
        one SUBSCRIPTIONS_CHANGED status, the only marker of the change; its JSON detail holds
        ``reason`` ("recentre", "rollover", "refresh") and ``symbol`` (the spot index) when
        given. Raises TickerLimitError (changing nothing) when the result would exceed the
        per-key limits."""
        before = {s.index: dict(s.modes) for s in self._shards}
        created = self._plan(dict(subscribe), list(unsubscribe))
        # recorded before the control messages go out, so it precedes their effects in the data
        detail = {
            **({"reason": reason} if reason else {}),
            **({"symbol": symbol} if symbol else {}),
            "subscribe": sorted(subscribe),
            "unsubscribe": sorted(set(unsubscribe) - set(subscribe)),
            "modes": {m: sorted(ts) for m, ts in _by_mode(subscribe).items()},
            "shards": [len(s.modes) for s in self._shards],
        }
        await self._status(StatusKind.SUBSCRIPTIONS_CHANGED, status_detail(**detail))
        for shard in self._shards:
            if shard in created or shard.ws is None:
                continue  # its (re)connect sends its whole state
            old = before.get(shard.index, {})
            gone = [t for t in old if t not in shard.modes]
            changed = {t: m for t, m in shard.modes.items() if old.get(t) != m}
            fresh = [t for t in changed if t not in old]
            async with shard.lock:
                ws = shard.ws
                if ws is None:
                    continue
                with contextlib.suppress(ConnectionClosed):  # the reconnect resubscribes
                    if gone:
                        await ws.send(json.dumps({"a": "unsubscribe", "v": gone}))
                    if fresh:
                        await ws.send(json.dumps({"a": "subscribe", "v": fresh}))
                    for mode, tokens in _by_mode(changed).items():
                        await ws.send(json.dumps({"a": "mode", "v": [mode, tokens]}))
        if self._failure is not None:  # running: connect the new shards
            for shard in created:
                self._start(shard)

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._failure = loop.create_future()
        for shard in self._shards:
            self._start(shard)
        try:
            await self._failure
        finally:
            tasks = [s.task for s in self._shards if s.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for shard in self._shards:
                shard.task = None
            self._failure = None
            self.stats.connected = False

    def _start(self, shard: _Shard) -> None:
        task = asyncio.create_task(self._shard_loop(shard), name=f"kite-ticker-{shard.index}")
        shard.task = task

        def done(t: asyncio.Task[None]) -> None:
            failure = self._failure
            if failure is None or failure.done() or t.cancelled():
                return
            exc = t.exception()
            failure.set_exception(exc or RuntimeError("kite ticker shard stopped"))

        task.add_done_callback(done)

    async def _access_token(self, rejected: str | None = None) -> str:
        """The current token; a fresh one when ``rejected`` is still the current one."""
        async with self._token_lock:
            if self._token is None or self._token == rejected:
                value = self._provider(refresh=rejected is not None)
                if inspect.isawaitable(value):
                    value = await value
                self._token = str(value)
            return self._token

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.reconnect_max_secs, self.reconnect_min_secs * 2**attempt)
        return self._rng.uniform(ceiling / 2, ceiling)

    async def _shard_loop(self, shard: _Shard) -> None:
        attempt = 0
        refreshed_for: str | None = None  # the token a fresh login produced after a 403
        while True:
            token = await self._access_token()
            url = f"{self.ws_url}?{urlencode({'api_key': self._api_key, 'access_token': token})}"
            try:
                ws = await websockets.connect(
                    url,
                    open_timeout=self.connect_timeout_secs,
                    max_size=8 << 20,
                    compression=None,
                    close_timeout=2,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status == 403:
                    if refreshed_for == token:
                        raise CredentialsError(
                            "the Kite ticker refused the access token even after a fresh login "
                            "(HTTP 403); check ZERODHA_API_KEY and that the app is enabled for "
                            "the websocket, then log in again"
                        ) from None
                    log.warning("kite ticker refused the access token; logging in again")
                    # another shard may have refreshed it already: then that token is used
                    refreshed_for = await self._access_token(rejected=token)
                    continue
                reason = f"upgrade refused with HTTP {status}"
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                # some websockets errors quote the URL, which holds the token
                text = str(exc).replace(token, "***") if token else str(exc)
                reason = f"connect failed: {exc.__class__.__name__}: {text}"
            else:
                refreshed_for = None
                received = await self._session(shard, ws)
                reason = received.reason
                if received.messages:
                    attempt = 0
            self.stats.reconnects += 1
            delay = self._backoff(attempt)
            attempt += 1
            log.info(
                "kite ticker reconnecting", shard=shard.index, reason=reason, in_s=round(delay, 3)
            )
            await asyncio.sleep(delay)

    async def _session(self, shard: _Shard, ws: ClientConnection) -> _Ended:
        """One connection's life: subscribe everything, then read until it ends."""
        ended = _Ended()
        try:
            async with shard.lock:
                shard.ws = ws
                modes = dict(shard.modes)
                if modes:
                    await ws.send(json.dumps({"a": "subscribe", "v": list(modes)}))
                    for mode, tokens in _by_mode(modes).items():
                        await ws.send(json.dumps({"a": "mode", "v": [mode, tokens]}))
            self.stats.connections += 1
            self._set_connected()
            log.info("kite ticker connected", shard=shard.index, tokens=len(modes))
            await self._status(
                StatusKind.CONNECTED, status_detail(shard=shard.index, tokens=len(modes))
            )
            await self._read(ws, ended)
        except ConnectionClosed as exc:
            ended.reason = f"connection closed: {exc}"
        finally:
            shard.ws = None
            self._set_connected()
            with contextlib.suppress(Exception):
                await asyncio.shield(ws.close())
            # a cancelled run() still records the disconnection
            await asyncio.shield(
                self._status(
                    StatusKind.DISCONNECTED,
                    status_detail(shard=shard.index, reason=ended.reason),
                )
            )
        return ended

    async def _read(self, ws: ClientConnection, ended: _Ended) -> None:
        stats, sink, seq = self.stats, self._sink, self.seq
        timeout = self.heartbeat_timeout_secs
        while True:
            try:
                async with asyncio.timeout(timeout):
                    data = await ws.recv()
            except TimeoutError:
                ended.reason = f"no data and no heartbeat for {timeout:g}s"
                return
            recv_ns = now_ns()
            ended.messages += 1
            stats.messages += 1
            stats.bytes += len(data)
            stats.last_message_ns = recv_ns
            if isinstance(data, str):
                status = parse_text(data, recv_ns, seq, stats)
                if status is not None:
                    await sink.put(status)
                    stats.records += 1
                continue
            ticks = parse_message(data, recv_ns, seq, stats)
            if ticks and self._on_ticks is not None:
                self._on_ticks(ticks)
            for tick in ticks:
                await sink.put(tick)
            stats.records += len(ticks)

    def _set_connected(self) -> None:
        self.stats.connected = any(s.ws is not None for s in self._shards)

    async def _status(self, kind: str, detail: str) -> None:
        await self._sink.put(Status(now_ns(), self.seq.next(), VENUE, kind, "", detail))
        self.stats.records += 1


@dataclass(slots=True)
class _Ended:
    reason: str = "stopped"
    messages: int = 0


def _by_mode(modes: Mapping[int, str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for token, mode in modes.items():
        out.setdefault(mode, []).append(token)
    return out
