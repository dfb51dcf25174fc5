"""One websocket client: frames written straight to its transport, and how it ends.

A live client is written to without waiting (:meth:`Client.write`, the fan-out's already framed
bytes): when more than ``buffer_limit`` bytes sit unsent beyond its socket's kernel buffer it is
cut (close code 1008 with the reason, counted), so a slow or stuck client never slows the
recorder or anyone else. A history client is waited for (:meth:`Client.put`): history goes as
fast as the client reads, and a client that reads nothing for ``stall_s`` is cut. Kite clients
get their 1-byte heartbeats from one timer for all clients (:func:`send_heartbeats`).

There is no send queue or writer task per client: each write is one ``transport.write`` of
bytes framed once for every client that gets them. With the rest of this round's changes that
took the server's CPU at 100 clients from 55-60 to 17-20 us a client message, mostly the send
itself now (benchmarks/serve_fanout.py, shared machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Final

from aiohttp import web

from shriven.logging import get_logger
from shriven.serve.frames import HEARTBEAT_FRAME, frame
from shriven.serve.stats import ServeStats

__all__ = ["Client", "ClientGone", "close_reason", "send_heartbeats"]

log = get_logger("shriven.serve")

_CLOSE_TIMEOUT_S: Final = 1.0
# Unsent bytes a history client's transport may hold before the producer waits for it.
_TRANSPORT_HIGH: Final = 64 * 1024
_TRANSPORT_POLL_S: Final = 0.005
_REASON_BYTES: Final = 123  # the most a close frame's reason can hold


class ClientGone(Exception):
    """The client was disconnected; stop producing for it."""


def close_reason(text: str) -> bytes:
    """``text`` cut to what a close frame can carry (whole UTF-8 characters)."""
    data = text.encode("utf-8")
    if len(data) <= _REASON_BYTES:
        return data
    return data[: _REASON_BYTES - 3].decode("utf-8", "ignore").encode("utf-8") + b"..."


class Client:
    __slots__ = (
        "_closer",
        "buffer_limit",
        "gone",
        "heartbeat",
        "protocol",
        "request",
        "sent_at",
        "stall_s",
        "stats",
        "transport",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        protocol: str,
        stats: ServeStats,
        *,
        buffer_limit: int,
        heartbeat: bool = False,
        stall_s: float = 60.0,
    ) -> None:
        self.ws = ws
        self.request = request
        self.transport = request.transport
        self.protocol = protocol
        self.stats = stats
        self.buffer_limit = buffer_limit
        self.heartbeat = heartbeat
        self.stall_s = stall_s
        self.sent_at = time.monotonic()  # when anything was last written
        self.gone: str | None = None  # why the client ended, once it did
        self._closer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ producing

    def write(self, data: bytes) -> bool:
        """Write framed ``data`` now (live); cut the client when too much is left unsent.
        The caller counts the messages."""
        if self.gone is not None:
            return False
        t = self.transport
        if t is None or t.is_closing():
            self._lost()
            return False
        t.write(data)
        self.sent_at = time.monotonic()
        if t.get_write_buffer_size() > self.buffer_limit:
            self.cut(
                "slow",
                f"slow client: over {self.buffer_limit} bytes unsent; disconnected so the "
                "others are not held up",
            )
            return False
        return True

    def offer(self, message: bytes | str) -> bool:
        """Send one message now (a reply, a text message), counted."""
        data = frame(message)
        if not self.write(data):
            return False
        self.stats.messages[self.protocol] += 1
        self.stats.bytes[self.protocol] += len(data)
        return True

    async def put(self, message: bytes | str) -> None:
        """Send one message once the client has read what was sent before (history); raises
        ClientGone."""
        t = self.transport
        if t is not None and self.gone is None:
            waited_since = 0.0
            while t.get_write_buffer_size() > _TRANSPORT_HIGH and not t.is_closing():
                now = time.monotonic()
                if not waited_since:
                    waited_since = now
                elif now - waited_since > self.stall_s:
                    self.cut("stalled", f"client read nothing for {self.stall_s:g} s; disconnected")
                    break
                await asyncio.sleep(_TRANSPORT_POLL_S)
                if self.gone is not None:
                    break
        if self.gone is not None or not self.offer(message):
            raise ClientGone(self.gone)

    async def finish(self, code: int, reason: str, why: str) -> None:
        """Close with ``code`` and ``reason`` (after everything written so far)."""
        if self.gone is not None:
            return
        self.gone = why
        self.stats.disconnects[(self.protocol, why)] += 1
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=close_reason(reason))

    def cut(self, why: str, reason: str, code: int = 1008) -> None:
        """Disconnect now: send the close frame if the socket takes it, and count why (and the
        bytes left unsent)."""
        if self.gone is not None:
            return
        self.gone = why
        self.stats.disconnects[(self.protocol, why)] += 1
        if self.transport is not None:
            self.stats.dropped_bytes += self.transport.get_write_buffer_size()
        log.info("client disconnected", protocol=self.protocol, why=why, peer=self.peer)
        self._closer = asyncio.get_running_loop().create_task(self._close_now(code, reason))

    def closed_by_peer(self) -> None:
        if self.gone is None:
            self.gone = "closed"
            self.stats.disconnects[(self.protocol, "closed")] += 1

    def _lost(self) -> None:
        if self.gone is None:
            self.gone = "error"
            self.stats.disconnects[(self.protocol, "error")] += 1
            log.info("client connection lost", protocol=self.protocol, peer=self.peer)

    @property
    def peer(self) -> str:
        peer = self.request.remote
        return peer or "?"

    async def _close_now(self, code: int, reason: str) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(
                self.ws.close(code=code, message=close_reason(reason)), _CLOSE_TIMEOUT_S
            )
            return
        transport = self.request.transport
        if transport is not None:
            transport.abort()  # a client that stopped reading never answers the close

    async def wait_closed(self) -> None:
        if self._closer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._closer


def send_heartbeats(clients: Iterable[Client], stats: ServeStats, silence_s: float) -> None:
    """A Kite heartbeat to each Kite client sent nothing for ``silence_s`` (the ticker's 1-byte
    message in silence)."""
    quiet_since = time.monotonic() - silence_s
    for c in clients:
        if c.heartbeat and c.sent_at <= quiet_since and c.write(HEARTBEAT_FRAME):
            stats.heartbeats += 1
