"""The Binance websocket adapter (spot, USD-M and COIN-M futures): combined streams, depth
resync, reconnects. What differs between the venues is data (feeds/binance/venues.py): REST
paths, stream names, the depth rule (spot's ``U``/``u``, futures' ``pu`` chain).

Every trade and diff received is pushed to the sink as it arrives (with its receive time), every
snapshot that (re)starts a book is pushed when it is used, and Status records mark connects,
disconnects, gaps and resyncs. Pushing a record and updating the per-symbol :class:`DepthSync`
happen together under one lock, so the order in the sink is the order the synchroniser saw, and
a :class:`shriven.book.BookKeeper` fed from the sink (live or in replay) takes the same decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import websockets
from websockets.asyncio.client import ClientConnection

from shriven.book.depth_sync import BUFFERED, GAP, DepthSync, FuturesDepthSync
from shriven.config import Settings
from shriven.errors import ConfigError
from shriven.events import (
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    Record,
    SeqCounter,
    Status,
    StatusKind,
    now_ns,
    status_detail,
)
from shriven.feeds.base import FeedStats, RecordSink
from shriven.feeds.binance.parse import (
    BinanceMessageError,
    ServerShutdown,
    parse_depth_snapshot,
    parse_message,
)
from shriven.feeds.binance.rest import SnapshotClient
from shriven.feeds.binance.streams import (
    parse_futures_snapshot,
    parse_open_interest,
    parse_venue_message,
)
from shriven.feeds.binance.venues import BinanceMarket, market
from shriven.feeds.connection import Link, LoopPolicy, OpenLinks, Reconnect, run_connection
from shriven.logging import get_logger

__all__ = [
    "BinanceFeed",
    "BinanceFeedParams",
    "build_binance_feed",
    "connection_plan",
    "connection_report",
    "shard_streams",
    "stream_url",
    "subscribe_messages",
]

log = get_logger("shriven.binance")

VENUE: Final = "binance"
STREAMS_PER_SYMBOL: Final = 2  # <symbol>@depth@<interval> and <symbol>@trade
_HTTP_KINDS: Final = frozenset({400, 401, 403, 404, 408, 418, 429, 500, 502, 503, 504})
# A genuine diff or trade is a few kB (a 100 ms diff of the busiest book well under 1 MiB). A
# bigger frame closes the connection (1009) and we reconnect, rather than buffer it whole.
MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024


@dataclass(slots=True)
class BinanceFeedParams:
    venue: str = VENUE  # "binance" (spot), "binance-usdm" or "binance-coinm"
    # Stream kinds per symbol (venues.STREAM_KINDS); empty: the venue's default.
    streams: tuple[str, ...] = ()
    # Seconds between open-interest polls (futures; 0: none).
    open_interest_secs: float = 0.0
    # REST weight per minute the venue allows (0: the venue's documented figure).
    weight_limit: int = 0
    # Dated contracts: symbol -> delivery time (ms). At delivery the symbol stops (a
    # subscriptions_changed marker) and an alias naming it moves to the next contract.
    deliveries: dict[str, int] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> contract it names now
    api_root: str = "https://api.binance.com"
    ws_url: str = "wss://stream.binance.com:9443"
    depth_limit: int = 1000
    depth_interval: str = "100ms"
    # Binance spot: "A single connection can listen to a maximum of 1024 streams."
    max_streams_per_connection: int = 1024
    reconnect_initial_secs: float = 0.5
    reconnect_max_secs: float = 30.0
    # No message for this long on an open connection: treat it as dead and reconnect.
    stall_secs: float = 60.0
    rest_max_backoff_secs: float = 60.0
    stale_snapshot_retry_secs: float = 0.25
    # A symbol that sent no diff this long after connecting is snapshotted anyway.
    quiet_snapshot_secs: float = 5.0
    open_timeout_secs: float = 10.0
    # Streams go in the connection URL up to this length; the rest are sent as SUBSCRIBE
    # messages, since hundreds of symbols would make a URL that servers and proxies refuse.
    url_max_chars: int = 4096
    subscribe_batch: int = 200  # stream names per SUBSCRIBE message
    # Binance closes a connection sending more than 5 messages a second (pongs count too).
    subscribe_interval_secs: float = 0.3

    @property
    def market(self) -> BinanceMarket:
        return market(self.venue)

    @property
    def stream_kinds(self) -> tuple[str, ...]:
        return self.streams or self.market.default_streams

    @classmethod
    def from_settings(cls, settings: Settings, venue: str = VENUE) -> BinanceFeedParams:
        if venue != VENUE:
            return _futures_params(settings, venue)
        return cls(
            streams=tuple(settings.binance_streams),
            api_root=settings.binance_api_root,
            ws_url=settings.binance_ws_url,
            depth_limit=settings.binance_depth_limit,
            depth_interval=settings.binance_depth_interval,
            max_streams_per_connection=settings.binance_max_streams_per_connection,
            reconnect_initial_secs=settings.binance_reconnect_initial_secs,
            reconnect_max_secs=settings.binance_reconnect_max_secs,
            stall_secs=settings.binance_stall_secs,
            rest_max_backoff_secs=settings.binance_rest_max_backoff_secs,
        )


def _futures_params(settings: Settings, venue: str) -> BinanceFeedParams:
    prefix = "binance_usdm" if venue == "binance-usdm" else "binance_coinm"
    return BinanceFeedParams(
        venue=venue,
        streams=tuple(getattr(settings, f"{prefix}_streams")),
        open_interest_secs=settings.binance_open_interest_secs,
        api_root=getattr(settings, f"{prefix}_api_root"),
        ws_url=getattr(settings, f"{prefix}_ws_url"),
        depth_limit=settings.binance_futures_depth_limit,
        depth_interval=getattr(settings, f"{prefix}_depth_interval"),
        max_streams_per_connection=settings.binance_futures_max_streams_per_connection,
        reconnect_initial_secs=settings.binance_reconnect_initial_secs,
        reconnect_max_secs=settings.binance_reconnect_max_secs,
        stall_secs=settings.binance_stall_secs,
        rest_max_backoff_secs=settings.binance_rest_max_backoff_secs,
        # Futures servers drop a connection sending more than 10 messages a second.
        subscribe_interval_secs=0.15,
    )


def shard_streams(
    symbols: Sequence[str], max_streams: int, per_symbol: int = STREAMS_PER_SYMBOL
) -> list[list[str]]:
    """Group symbols so that each connection carries at most ``max_streams`` streams; a symbol's
    streams (``per_symbol`` of them) always share a connection."""
    per_conn = max(1, max_streams // max(1, per_symbol))
    return [list(symbols[i : i + per_conn]) for i in range(0, len(symbols), per_conn)]


def stream_names(
    symbols: Sequence[str], interval: str = "100ms", params: BinanceFeedParams | None = None
) -> list[str]:
    if params is not None and (params.venue != VENUE or params.streams):
        m = params.market
        return [m.stream_name(s, k, interval) for s in symbols for k in params.stream_kinds]
    names: list[str] = []
    for s in symbols:
        low = s.lower()
        # Spot names the 1 s depth stream without a suffix.
        names.append(f"{low}@depth" if interval == "1000ms" else f"{low}@depth@{interval}")
        names.append(f"{low}@trade")
    return names


def stream_url(ws_url: str, symbols: Sequence[str], interval: str = "100ms") -> str:
    return f"{ws_url.rstrip('/')}/stream?streams={'/'.join(stream_names(symbols, interval))}"


def connection_plan(
    ws_url: str,
    symbols: Sequence[str],
    interval: str = "100ms",
    url_max_chars: int = 4096,
    params: BinanceFeedParams | None = None,
) -> tuple[str, list[str]]:
    """The combined-stream URL holding as many of the symbols' streams as fit in
    ``url_max_chars`` (at least one), and the stream names left to SUBSCRIBE to once open."""
    names = stream_names(symbols, interval, params)
    url = f"{ws_url.rstrip('/')}/stream?streams="
    n = 0
    for name in names:
        extra = len(name) + (1 if n else 0)
        if n and len(url) + extra > url_max_chars:
            break
        url += ("/" if n else "") + name
        n += 1
    return url, names[n:]


def subscribe_messages(names: Sequence[str], batch: int, first_id: int = 1) -> list[str]:
    """``{"method":"SUBSCRIBE","params":[...],"id":N}`` messages of at most ``batch`` names."""
    return [
        json.dumps(
            {"method": "SUBSCRIBE", "params": list(names[i : i + batch]), "id": first_id + k},
            separators=(",", ":"),
        )
        for k, i in enumerate(range(0, len(names), batch))
    ]


def connection_report(params: BinanceFeedParams, symbols: Sequence[str]) -> str:
    """What the feed would open for ``symbols`` (for ``shriven run --dry-run``)."""
    kinds = params.stream_kinds
    shards = shard_streams(list(symbols), params.max_streams_per_connection, len(kinds))
    shown = ", ".join(f"depth@{params.depth_interval}" if k == "depth" else k for k in kinds)
    lines = [
        f"{_TITLES[params.venue]}: {len(symbols)} symbol(s), {len(kinds) * len(symbols)} streams "
        f"({shown}) over {len(shards)} websocket connection(s) "
        f"(at most {params.max_streams_per_connection} streams each) to {params.ws_url}; "
        f"depth snapshots of {params.depth_limit} levels from {params.api_root}:"
    ]
    for n, shard in enumerate(shards, 1):
        _url, later = connection_plan(
            params.ws_url, shard, params.depth_interval, params.url_max_chars, params
        )
        how = f", {len(later)} streams by SUBSCRIBE message" if later else ""
        lines.append(f"  connection {n}: {', '.join(shard)}{how}")
    if params.market.futures and params.open_interest_secs > 0:
        lines.append(f"  open interest polled every {params.open_interest_secs:g} s")
    return "\n".join(lines)


_TITLES: Final = {
    "binance": "Binance",
    "binance-usdm": "Binance USD-M futures",
    "binance-coinm": "Binance COIN-M futures",
}


class _Rolled(Exception):
    """Internal: a contract was delivered and the symbols changed: reopen every connection."""


class BinanceFeed:
    """FeedAdapter for one Binance venue's trades, tickers and L2 books of ``symbols``."""

    def __init__(
        self,
        params: BinanceFeedParams | Settings,
        symbols: Sequence[str],
        sink: RecordSink,
        *,
        seq: SeqCounter | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(params, Settings):
            params = BinanceFeedParams.from_settings(params)
        self.venue = params.venue
        self.market = params.market
        if not symbols:
            raise ConfigError(
                "no Binance symbols configured: set SHRIVEN_BINANCE_SYMBOLS (e.g. BTCUSDT,ETHUSDT)"
            )
        self.params = params
        # Spot with only depth and trades takes the spot parser's fast path directly.
        self._spot_only = not self.market.futures and set(params.stream_kinds) <= {"depth", "trade"}
        self.symbols = [s.upper() for s in symbols]
        self.sink = sink
        self.stats = FeedStats(self.venue)
        sync = FuturesDepthSync if self.market.futures else DepthSync
        self.syncs: dict[str, DepthSync[None] | FuturesDepthSync[None]] = {
            s: sync() for s in self.symbols
        }
        self.shards = shard_streams(
            self.symbols, params.max_streams_per_connection, len(params.stream_kinds)
        )
        self._seq = seq or SeqCounter()
        self._rng = rng or random.Random()
        self._order = asyncio.Lock()
        self._resync_tasks: dict[str, asyncio.Task[None]] = {}
        self._quiet_task: asyncio.Task[None] | None = None
        # The feed counts as connected only while every shard streams: a missing shard is a
        # set of symbols recording nothing.
        self._links = OpenLinks(self.stats, require="all")
        for i in range(len(self.shards)):
            self._links.add(i)
        self.rest = SnapshotClient(
            params.api_root,
            limit=params.depth_limit,
            max_backoff=params.rest_max_backoff_secs,
            on_venue_error=self._venue_error,
            rng=self._rng,
            depth_path=self.market.depth_path,
            depth_weight=self.market.depth_weight,
            weight_limit=params.weight_limit or self.market.weight_per_minute,
            venue=self.venue,
        )
        self._pending_venue_msgs: list[Status] = []

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Stream until cancelled; each shard reconnects on its own."""
        p = self.params
        policy = LoopPolicy(
            venue=self.venue,
            reconnect_min_secs=p.reconnect_initial_secs,
            reconnect_max_secs=p.reconnect_max_secs,
            stall_secs=p.stall_secs,
            stall_reason="no message for {secs:g} s (stalled stream)",
            open_timeout_secs=p.open_timeout_secs,
            max_message_bytes=MAX_MESSAGE_BYTES,
            reset_backoff="on_open",
            restart_on_error=True,
        )
        try:
            while True:
                rolled = False
                # after a roll the shards are planned anew: so is the set that must be open
                links = OpenLinks(self.stats, require="all")
                for i in range(len(self.shards)):
                    links.add(i)
                self._links = links
                try:
                    async with asyncio.TaskGroup() as tg:
                        for i, shard in enumerate(self.shards):
                            link = _ShardLink(self, i, shard)
                            tg.create_task(
                                run_connection(link, policy, self.stats, links, self._rng),
                                name=f"{self.venue}-shard-{i}",
                            )
                        if self.market.open_interest_path and self.params.open_interest_secs > 0:
                            tg.create_task(self._poll_open_interest(), name=f"{self.venue}-oi")
                        if self.params.deliveries:
                            tg.create_task(self._watch_deliveries(), name=f"{self.venue}-roll")
                except* _Rolled:
                    rolled = True  # the shards closed cleanly: reconnect with the new contracts
                if not rolled or not self.syncs:
                    return
        finally:
            tasks = [
                *self._resync_tasks.values(),
                *([self._quiet_task] if self._quiet_task else []),
            ]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.rest.close()

    async def _subscribe(self, ws: ClientConnection, requests: Sequence[str]) -> None:
        """Send the SUBSCRIBE messages for the streams the URL could not hold, spaced to stay
        under the venue's incoming message limit. Diffs of a stream arriving later are fine:
        the synchroniser snapshots a symbol once its first diff is buffered."""
        for i, message in enumerate(requests):
            if i:
                await asyncio.sleep(self.params.subscribe_interval_secs)
            with contextlib.suppress(websockets.ConnectionClosed):  # the reconnect resends
                await ws.send(message)

    # ------------------------------------------------------------ messages

    async def _message(self, raw: str | bytes, recv_ns: int) -> None:
        try:
            if self._spot_only:
                record = parse_message(raw, recv_ns, symbols=self.syncs)
            else:
                record = parse_venue_message(raw, recv_ns, self.venue, symbols=self.syncs)
        except ServerShutdown as exc:
            raise Reconnect("venue announced server shutdown") from exc
        except BinanceMessageError as exc:
            # kind is one of parse.ERROR_KINDS and the sample is bounded and escaped.
            if self.stats.count_error(exc.kind) == 1:
                log.warning("skipping unexpected Binance message", kind=exc.kind, error=str(exc))
            return
        if record is None:
            return
        async with self._order:
            if type(record) is BinanceDepth:
                sync = self.syncs[record.symbol]
                await self._put(record)
                expected = sync.last_update_id + 1
                outcome = sync.on_diff(record.first_update_id, record.last_update_id, None)
                if outcome == GAP:
                    await self._gap(
                        record.symbol,
                        f"sequence: expected U={expected}, got U={record.first_update_id}",
                    )
                elif outcome == BUFFERED:
                    self._ensure_resync(record.symbol)
            elif type(record) is BinanceFuturesDepth:
                fsync = self.syncs[record.symbol]
                await self._put(record)
                expected = fsync.last_update_id
                outcome = fsync.on_diff(  # type: ignore[call-arg]
                    record.first_update_id, record.last_update_id, record.prev_update_id, None
                )
                if outcome == GAP:
                    await self._gap(
                        record.symbol,
                        f"sequence: expected pu={expected}, got pu={record.prev_update_id}",
                    )
                elif outcome == BUFFERED:
                    self._ensure_resync(record.symbol)
            else:
                await self._put(record)
            await self._flush_venue_messages()

    async def _put(self, record: Record) -> None:
        record.seq = self._seq.next()
        await self.sink.put(record)
        self.stats.records += 1

    def _status(self, kind: str, instrument: str = "", detail: str = "") -> Status:
        return Status(now_ns(), 0, self.venue, kind, instrument, detail)

    async def _gap(self, symbol: str, detail: str) -> None:
        self.stats.gaps += 1
        log.warning("gap in depth stream, resyncing", symbol=symbol, detail=detail)
        await self._put(self._status(StatusKind.GAP, symbol, status_detail(reason=detail)))
        self._ensure_resync(symbol)

    # ------------------------------------------------------------ connection events

    def _connected(self) -> None:
        if self._quiet_task is None or self._quiet_task.done():
            self._quiet_task = asyncio.create_task(self._snapshot_quiet_symbols())

    async def _snapshot_quiet_symbols(self) -> None:
        # The official procedure fetches a snapshot once a diff is buffered. A symbol whose book
        # does not change sends no diff, so it would never get a book: snapshot it anyway. Its
        # next diff must then straddle or continue the snapshot like any first diff.
        await asyncio.sleep(self.params.quiet_snapshot_secs)
        for symbol, sync in self.syncs.items():
            if not sync.live and not sync.buffer:
                self._ensure_resync(symbol)

    async def request_resync(self, symbol: str, reason: str = "requested") -> None:
        """Drop ``symbol``'s book and take a new snapshot (for a consumer that lost records,
        e.g. a pipeline queue that drops when full). Recorded as a ``gap`` Status."""
        sync = self.syncs[symbol.upper()]
        async with self._order:
            if sync.invalidate():
                self.stats.gaps += 1
                await self._put(
                    self._status(StatusKind.GAP, symbol.upper(), status_detail(reason=reason))
                )
        self._ensure_resync(symbol.upper())

    # ------------------------------------------------------------ snapshots

    def _ensure_resync(self, symbol: str) -> None:
        task = self._resync_tasks.get(symbol)
        if task is None or task.done():
            self._resync_tasks[symbol] = asyncio.create_task(
                self._resync(symbol), name=f"{self.venue}-resync-{symbol}"
            )

    async def _resync(self, symbol: str) -> None:
        while True:
            try:
                body, recv_ns = await self.rest.fetch(symbol)
            except Exception as exc:  # a VenueError (bad symbol) must not kill the feed
                self.stats.count_error("snapshot_refused")
                log.error("cannot fetch depth snapshot", symbol=symbol, error=str(exc))
                await asyncio.sleep(self.params.rest_max_backoff_secs)
                continue
            try:
                snap: BinanceDepthSnapshot | BinanceFuturesDepthSnapshot = (
                    parse_futures_snapshot(body, self.venue, symbol, recv_ns)
                    if self.market.futures
                    else parse_depth_snapshot(body, symbol, recv_ns)
                )
            except BinanceMessageError as exc:
                if self.stats.count_error(exc.kind) == 1:
                    log.warning("bad depth snapshot", symbol=symbol, error=str(exc))
                await asyncio.sleep(self.params.stale_snapshot_retry_secs)
                continue
            async with self._order:
                await self._flush_venue_messages()
                sync = self.syncs[symbol]
                if sync.live:  # cannot happen: only this task makes a sync live
                    return
                result = sync.on_snapshot(snap.last_update_id)
                if result.usable:
                    await self._put(snap)
                    self.stats.resyncs += 1
                    await self._put(
                        self._status(
                            StatusKind.RESYNCED,
                            symbol,
                            status_detail(
                                last_update_id=snap.last_update_id, applied=len(result.apply)
                            ),
                        )
                    )
                    if not result.gap:
                        return
                    self.stats.gaps += 1
                    await self._put(
                        self._status(
                            StatusKind.GAP,
                            symbol,
                            status_detail(reason="sequence: hole in buffered diffs"),
                        )
                    )
                else:
                    self.stats.count_error("stale_snapshot")
                    log.info(
                        "snapshot older than buffered diffs, fetching again",
                        symbol=symbol,
                        last_update_id=snap.last_update_id,
                        first_buffered_u=sync.first_buffered_u,
                    )
            await asyncio.sleep(self.params.stale_snapshot_retry_secs)

    def _venue_error(self, symbol: str, status: int, message: str) -> None:
        # Called from the REST client (no awaiting there); recorded at the next chance.
        # A fixed set of kinds: the status is a number the venue chose.
        self.stats.count_error(f"http_{status}" if status in _HTTP_KINDS else "http_other")
        self._pending_venue_msgs.append(
            self._status(
                StatusKind.VENUE_MESSAGE,
                symbol,
                status_detail(type="http_error", status=status, message=message),
            )
        )

    async def _poll_open_interest(self) -> None:
        """The venue has no open-interest stream: ask REST for each symbol every interval."""
        path = self.market.open_interest_path
        while True:
            for symbol in list(self.syncs):
                try:
                    body, recv_ns = await self.rest.get(
                        path, {"symbol": symbol}, weight=1, symbol=symbol, what="open interest"
                    )
                    record = parse_open_interest(body, self.venue, symbol, recv_ns)
                except BinanceMessageError as exc:
                    if self.stats.count_error(exc.kind) == 1:
                        log.warning("bad open interest answer", symbol=symbol, error=str(exc))
                    continue
                except Exception as exc:  # a refused symbol must not end the poll
                    if self.stats.count_error("open_interest_refused") == 1:
                        log.error("cannot fetch open interest", symbol=symbol, error=str(exc))
                    continue
                async with self._order:
                    await self._put(record)
                    await self._flush_venue_messages()
            await asyncio.sleep(self.params.open_interest_secs)

    async def _watch_deliveries(self) -> None:
        """Sleep until the next delivery among our contracts, then roll (see :meth:`_roll`)."""
        p = self.params
        pending = {s: ms for s, ms in p.deliveries.items() if s in self.syncs}
        if not pending:
            await asyncio.Event().wait()  # nothing to deliver: idle until cancelled
        symbol, when_ms = min(pending.items(), key=lambda kv: kv[1])
        await asyncio.sleep(max(0.0, when_ms / 1000 - time.time()))
        await self._roll(symbol)
        raise _Rolled(symbol)

    async def _roll(self, delivered: str) -> None:
        """``delivered`` stops; every alias that named it is resolved again against
        exchangeInfo (the venue lists the next contract under the same pair and contract type)."""
        from shriven.feeds.binance.listings import resolve_symbols
        from shriven.feeds.binance.streams import parse_exchange_info

        p = self.params
        p.deliveries.pop(delivered, None)
        moved = [a for a, s in p.aliases.items() if s == delivered]
        added: list[str] = []
        for alias in moved:
            try:
                body, _ns = await self.rest.get(
                    self.market.exchange_info_path, {}, weight=1, what="exchangeInfo"
                )
                resolved = resolve_symbols(self.venue, [alias], parse_exchange_info(body))
            except Exception as exc:  # the roll must not end the feed
                self.stats.count_error("roll_failed")
                log.error("cannot roll the alias", venue=self.venue, alias=alias, error=str(exc))
                continue
            new = resolved.symbols[0]
            p.aliases[alias] = new
            listing = resolved.listings[new]
            if listing.delivery_date:
                p.deliveries[new] = listing.delivery_date
            if new not in self.syncs and new != delivered:
                added.append(new)
        symbols = [s for s in self.symbols if s != delivered] + added
        log.info("contract delivered, rolling", venue=self.venue, delivered=delivered, added=added)
        async with self._order:
            await self._put(
                self._status(
                    StatusKind.SUBSCRIPTIONS_CHANGED,
                    delivered,
                    status_detail(reason="delivered", removed=[delivered], added=added),
                )
            )
        task = self._resync_tasks.pop(delivered, None)
        if task is not None:
            task.cancel()
        sync_type = FuturesDepthSync if self.market.futures else DepthSync
        self.syncs = {s: self.syncs.get(s) or sync_type() for s in symbols}
        self.symbols = symbols
        self.shards = shard_streams(symbols, p.max_streams_per_connection, len(p.stream_kinds))

    async def _flush_venue_messages(self) -> None:
        while self._pending_venue_msgs:
            await self._put(self._pending_venue_msgs.pop(0))


class _ShardLink(Link):
    """The Binance part of one shard's connection: its combined-stream URL, the SUBSCRIBE
    messages the URL could not hold, messages to the synchroniser and the sink."""

    def __init__(self, feed: BinanceFeed, index: int, symbols: list[str]) -> None:
        p = feed.params
        self.index = index
        self._feed = feed
        self._symbols = symbols
        self._url, later = connection_plan(p.ws_url, symbols, p.depth_interval, p.url_max_chars, p)
        self._requests = subscribe_messages(later, p.subscribe_batch)
        self._subscribing: asyncio.Task[None] | None = None

    async def url(self) -> str:
        return self._url

    async def opened(self, ws: ClientConnection) -> dict[str, object]:
        self._feed._connected()
        self._subscribing = asyncio.create_task(self._feed._subscribe(ws, self._requests))
        return {"symbols": list(self._symbols)}

    async def received(self, data: str | bytes, recv_ns: int) -> None:
        await self._feed._message(data, recv_ns)

    async def closed(self) -> None:
        # The books stay: update ids are contiguous per symbol, so if anything was missed while
        # disconnected the first diff after reconnecting shows the hole and resyncs that symbol.
        if self._subscribing is not None:
            self._subscribing.cancel()
            self._subscribing = None

    async def mark(self, kind: str, detail: str) -> None:
        async with self._feed._order:
            await self._feed._put(self._feed._status(kind, "", detail))


def build_binance_feed(
    settings: Settings,
    sink: RecordSink,
    symbols: Sequence[str] | None = None,
    seq: SeqCounter | None = None,
) -> BinanceFeed:
    """The feed for ``symbols`` (default: ``settings.binance_symbols``) at the configured
    endpoints."""
    chosen = list(symbols) if symbols else list(settings.binance_symbols)
    return BinanceFeed(settings, chosen, sink, seq=seq)
