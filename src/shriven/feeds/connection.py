"""The one websocket connection loop every venue feed uses: connect, read, watch for silence,
mark the stream's opening and closing in the data, back off and reconnect.

A feed opens one loop per connection (shard) with :func:`run_connection`, handing it a
:class:`Link`: the venue's part (which URL, what to send once open, what to do with a message,
how to write a status marker). What differs between venues on purpose is a hook of the link or a
field of :class:`LoopPolicy`, never a second loop:

- a handshake refused with an HTTP status goes to :meth:`Link.refused`, which may ask for an
  immediate retry (Kite logs in again on 403);
- ``reset_backoff`` says when the back-off starts again from its minimum: once a connection
  opens (Binance) or once it has delivered data (Kite);
- ``restart_on_error`` says whether an unexpected exception in the venue's code is counted and
  answered with a reconnect (Binance) or ends the feed (Kite);
- :class:`OpenLinks` says whether the feed counts as connected while any or only while all of
  its connections are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import CloseCode

from shriven.events import StatusKind, now_ns, status_detail
from shriven.feeds.base import FeedStats
from shriven.feeds.stall import StallWatch
from shriven.logging import get_logger

__all__ = [
    "Backoff",
    "Link",
    "LoopPolicy",
    "OpenLinks",
    "Reconnect",
    "run_connection",
]

log = get_logger(__name__)

STOPPED: Final = "stopped"


class Reconnect(Exception):
    """Raised by a link's :meth:`Link.received` to end the connection and reconnect (e.g. the
    venue announced a server shutdown); the message is the recorded reason."""


@dataclass(frozen=True, slots=True)
class LoopPolicy:
    """How one venue's connections behave; the fields are the venue's settings."""

    venue: str
    # How log lines name these connections ("kite ticker"): "<name> reconnecting" and the like.
    name: str = ""
    reconnect_min_secs: float = 0.5
    reconnect_max_secs: float = 30.0
    # No message for this long on an open connection: treat it as dead and reconnect.
    stall_secs: float = 60.0
    # The DISCONNECTED reason of a stall, formatted with ``secs``.
    stall_reason: str = "no message for {secs:g}s"
    open_timeout_secs: float = 10.0
    close_timeout_secs: float = 10.0
    max_message_bytes: int = 1 << 20
    reset_backoff: Literal["on_open", "on_data"] = "on_open"
    restart_on_error: bool = False


@dataclass(slots=True)
class Backoff:
    """Exponential, jittered delays: attempt n waits uniformly in [c/2, c] with
    c = min(maximum, minimum * 2**n)."""

    minimum: float
    maximum: float
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.minimum * 2**self.attempt)
        self.attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class OpenLinks:
    """Which connections of a feed are open, kept in ``stats.connected``: true while any
    (``require="any"``) or only while every (``require="all"``) known connection is open."""

    def __init__(self, stats: FeedStats, require: Literal["any", "all"]) -> None:
        self._stats = stats
        self._all = require == "all"
        self._open: dict[int, bool] = {}

    def add(self, index: int) -> None:
        """Know connection ``index`` (closed until it opens)."""
        self._open.setdefault(index, False)

    def set_open(self, index: int, is_open: bool) -> None:
        self._open[index] = is_open
        states = self._open.values()
        self._stats.connected = all(states) if self._all else any(states)


class Link(Protocol):
    """A venue's part of one connection. ``index`` names the connection in markers and logs."""

    index: int

    async def url(self) -> str:
        """The URL of the next attempt (may log in first)."""
        ...

    async def opened(self, ws: ClientConnection) -> Mapping[str, object]:
        """The connection is open: subscribe. Returns the CONNECTED marker's details besides
        the shard number."""
        ...

    async def received(self, data: str | bytes, recv_ns: int) -> None:
        """One message, received at ``recv_ns``. May raise :class:`Reconnect`."""
        ...

    async def mark(self, kind: str, detail: str) -> None:
        """Write a CONNECTED or DISCONNECTED status with this JSON detail to the sink."""
        ...

    async def closed(self) -> None:
        """The connection ended (after a successful :meth:`opened` or not): forget it."""
        return None

    async def refused(self, status: int) -> bool:
        """The handshake was refused with HTTP ``status``. True: try again at once, without
        backing off (e.g. after a fresh login). May raise to end the feed."""
        return False

    def redact(self, text: str) -> str:
        """``text`` (an error message, which may quote the URL) without secrets."""
        return text


async def run_connection(
    link: Link,
    policy: LoopPolicy,
    stats: FeedStats,
    links: OpenLinks,
    rng: random.Random | None = None,
) -> None:
    """Keep ``link``'s connection up until cancelled. Raises only what a hook raises (and,
    without ``restart_on_error``, what the venue's code raises)."""
    backoff = Backoff(policy.reconnect_min_secs, policy.reconnect_max_secs, rng or random.Random())
    links.add(link.index)
    who = policy.name or policy.venue
    while True:
        url = await link.url()
        opened = False
        try:
            ws = await connect(
                url,
                open_timeout=policy.open_timeout_secs,
                max_size=policy.max_message_bytes,
                compression=None,
                close_timeout=policy.close_timeout_secs,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if await link.refused(status):
                continue
            reason = f"upgrade refused with HTTP {status}"
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            # some websockets errors quote the URL, which may hold a token
            reason = link.redact(f"connect failed: {type(exc).__name__}: {exc}")
        else:
            opened, reason, messages = await _session(link, ws, policy, stats, links)
            if messages or (opened and policy.reset_backoff == "on_open"):
                backoff.reset()
        if not opened:
            log.warning(
                f"{who} cannot connect", venue=policy.venue, shard=link.index, reason=reason
            )
        delay = backoff.next_delay()
        log.info(
            f"{who} reconnecting",
            venue=policy.venue,
            shard=link.index,
            reason=reason,
            in_s=round(delay, 3),
        )
        await asyncio.sleep(delay)
        stats.reconnects += 1


async def _session(
    link: Link, ws: ClientConnection, policy: LoopPolicy, stats: FeedStats, links: OpenLinks
) -> tuple[bool, str, int]:
    """One connection's life: subscribe, mark it open, read until it ends, mark it closed.
    Returns (whether it opened, why it ended, messages received)."""
    reason = STOPPED  # a cancelled feed still records the disconnection
    who = policy.name or policy.venue
    opened = False
    messages = 0
    try:
        detail = await link.opened(ws)
        opened = True
        stats.connections += 1
        links.set_open(link.index, True)
        shown = {k: len(v) if isinstance(v, list) else v for k, v in detail.items()}
        log.info(f"{who} connected", venue=policy.venue, shard=link.index, **shown)
        await link.mark(StatusKind.CONNECTED, status_detail(shard=link.index, **detail))
        timeout = policy.stall_secs
        watch = StallWatch(timeout)
        try:
            while True:
                watch.reading()
                try:
                    data = await ws.recv()
                except asyncio.CancelledError:
                    if not watch.stalled():
                        raise
                    reason = policy.stall_reason.format(secs=timeout)
                    break
                watch.done()
                recv_ns = now_ns()
                messages += 1
                stats.messages += 1
                stats.bytes += len(data)
                stats.last_message_ns = recv_ns
                await link.received(data, recv_ns)
        finally:
            watch.close()
    except Reconnect as exc:
        reason = str(exc)
    except ConnectionClosed as exc:
        reason = f"connection closed: {exc}"
        if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
            stats.count_error("message_too_large")
    except Exception as exc:
        if not policy.restart_on_error:
            raise
        # A bug met by some input must not end the feed: count it, reconnect (which resyncs
        # what missed something) and let /health show it.
        stats.task_restarts += 1
        stats.count_error("internal_error")
        log.exception(
            f"{who} connection failed, restarting it", venue=policy.venue, shard=link.index
        )
        reason = f"internal error: {type(exc).__name__}"
    finally:
        links.set_open(link.index, False)
        await link.closed()
        with contextlib.suppress(Exception):
            await asyncio.shield(ws.close())
        if opened:
            # A clean stop is not worth a warning; a dropped connection is.
            (log.info if reason == STOPPED else log.warning)(
                f"{who} disconnected", venue=policy.venue, shard=link.index, reason=reason
            )
            await asyncio.shield(
                link.mark(StatusKind.DISCONNECTED, status_detail(shard=link.index, reason=reason))
            )
    return opened, reason, messages
