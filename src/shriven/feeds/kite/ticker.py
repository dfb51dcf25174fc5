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

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

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
from shriven.feeds.connection import Link, LoopPolicy, OpenLinks, run_connection
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
        self._policy = LoopPolicy(
            venue=VENUE,
            name="kite ticker",
            reconnect_min_secs=reconnect_min_secs,
            reconnect_max_secs=reconnect_max_secs,
            stall_secs=heartbeat_timeout_secs,
            stall_reason="no data and no heartbeat for {secs:g}s",
            open_timeout_secs=connect_timeout_secs,
            close_timeout_secs=2.0,
            max_message_bytes=8 << 20,
            reset_backoff="on_data",  # a handshake that opens and drops at once is not progress
            restart_on_error=False,
        )
        self._links = OpenLinks(self.stats, require="any")
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
        task = asyncio.create_task(
            run_connection(
                _ShardLink(self, shard), self._policy, self.stats, self._links, self._rng
            ),
            name=f"kite-ticker-{shard.index}",
        )
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

    async def _status(self, kind: str, detail: str) -> None:
        await self._sink.put(Status(now_ns(), self.seq.next(), VENUE, kind, "", detail))
        self.stats.records += 1


class _ShardLink(Link):
    """The Kite part of one shard's connection: the token in the URL, a fresh login on 403,
    every subscription sent on (re)connect, binary ticks and text messages to the sink."""

    def __init__(self, feed: KiteTickerFeed, shard: _Shard) -> None:
        self.index = shard.index
        self._feed = feed
        self._shard = shard
        self._token = ""
        self._refreshed_for: str | None = None  # the token a fresh login produced after a 403

    async def url(self) -> str:
        self._token = await self._feed._access_token()
        query = urlencode({"api_key": self._feed._api_key, "access_token": self._token})
        return f"{self._feed.ws_url}?{query}"

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    async def refused(self, status: int) -> bool:
        if status != 403:
            return False
        if self._refreshed_for == self._token:
            raise CredentialsError(
                "the Kite ticker refused the access token even after a fresh login "
                "(HTTP 403); check ZERODHA_API_KEY and that the app is enabled for "
                "the websocket, then log in again"
            ) from None
        log.warning("kite ticker refused the access token; logging in again")
        # another shard may have refreshed it already: then that token is used
        self._refreshed_for = await self._feed._access_token(rejected=self._token)
        return True

    async def opened(self, ws: ClientConnection) -> dict[str, object]:
        self._refreshed_for = None
        shard = self._shard
        async with shard.lock:
            shard.ws = ws
            modes = dict(shard.modes)
            if modes:
                await ws.send(json.dumps({"a": "subscribe", "v": list(modes)}))
                for mode, tokens in _by_mode(modes).items():
                    await ws.send(json.dumps({"a": "mode", "v": [mode, tokens]}))
        return {"tokens": len(modes)}

    async def closed(self) -> None:
        self._shard.ws = None

    async def mark(self, kind: str, detail: str) -> None:
        await self._feed._status(kind, detail)

    async def received(self, data: str | bytes, recv_ns: int) -> None:
        feed = self._feed
        stats, sink, seq = feed.stats, feed._sink, feed.seq
        if isinstance(data, str):
            status = parse_text(data, recv_ns, seq, stats)
            if status is not None:
                await sink.put(status)
                stats.records += 1
            return
        ticks = parse_message(data, recv_ns, seq, stats)
        if ticks and feed._on_ticks is not None:
            feed._on_ticks(ticks)
        put_many = getattr(sink, "put_many", None)  # the pipeline's queue: one call a message
        if put_many is not None:
            await put_many(ticks)
        else:
            for tick in ticks:
                await sink.put(tick)
        stats.records += len(ticks)


def _by_mode(modes: Mapping[int, str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for token, mode in modes.items():
        out.setdefault(mode, []).append(token)
    return out
