"""One websocket client: a bounded send queue, the task that writes it, and how it ends.

A live client is offered messages without waiting (:meth:`Client.offer`): when its queue is
full it is cut (close code 1008 with the reason, counted), so a slow or stuck client never slows
the recorder or anyone else. A history client is waited for (:meth:`Client.put`): history goes
as fast as the client reads, and a client that reads nothing for ``stall_s`` is cut. A Kite client
gets a 1-byte heartbeat after ``heartbeat_s`` with nothing to send, as the ticker does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Final

from aiohttp import web

from shriven.logging import get_logger
from shriven.serve.stats import ServeStats

__all__ = ["Client", "ClientGone", "close_reason"]

log = get_logger("shriven.serve")

_CLOSE_TIMEOUT_S: Final = 1.0
# Bytes the transport may hold unsent for one client before its writer waits (and its queue
# starts to fill): aiohttp's websocket writer lets the buffer grow past 200 kB first.
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
    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        protocol: str,
        stats: ServeStats,
        *,
        queue_limit: int,
        heartbeat_s: float | None = None,
        stall_s: float = 60.0,
    ) -> None:
        self.ws = ws
        self.request = request
        self.protocol = protocol
        self.stats = stats
        self.queue_limit = queue_limit
        self.heartbeat_s = heartbeat_s
        self.stall_s = stall_s
        self.queue: deque[tuple[bytes | str | None, int]] = deque()
        self.gone: str | None = None  # why the client ended, once it did
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.writer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ producing

    def offer(self, message: bytes | str, recv_ns: int = 0) -> bool:
        """Queue ``message`` now, or cut the client when its queue is full (live data)."""
        if self.gone is not None:
            return False
        if len(self.queue) >= self.queue_limit:
            self.cut(
                "slow",
                f"slow client: {self.queue_limit} messages queued unsent; disconnected so the "
                "others are not held up",
            )
            return False
        self.queue.append((message, recv_ns))
        self._wake.set()
        return True

    async def put(self, message: bytes | str) -> None:
        """Queue ``message``, waiting for room (history); raises ClientGone."""
        while len(self.queue) >= self.queue_limit and self.gone is None:
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), self.stall_s)
            except TimeoutError:
                self.cut("stalled", f"client read nothing for {self.stall_s:g} s; disconnected")
        if self.gone is not None:
            raise ClientGone(self.gone)
        self.queue.append((message, 0))
        self._wake.set()

    async def finish(self, code: int, reason: str, why: str) -> None:
        """Close with ``code`` and ``reason`` once everything queued is sent."""
        if self.gone is not None:
            return
        self.gone = why
        self.stats.disconnects[(self.protocol, why)] += 1
        self.queue.append((None, 0))
        self._close = (code, reason)
        self._wake.set()
        if self.writer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.writer

    def cut(self, why: str, reason: str, code: int = 1008) -> None:
        """Disconnect now: drop what is queued, send the close frame if the socket takes it,
        and count why."""
        if self.gone is not None:
            return
        self.gone = why
        self.stats.disconnects[(self.protocol, why)] += 1
        self.stats.dropped += len(self.queue)
        self.queue.clear()
        self._room.set()
        log.info("client disconnected", protocol=self.protocol, why=why, peer=self.peer)
        if self.writer is not None:
            self.writer.cancel()
        self._closer = asyncio.get_running_loop().create_task(self._close_now(code, reason))

    def closed_by_peer(self) -> None:
        if self.gone is None:
            self.gone = "closed"
            self.stats.disconnects[(self.protocol, "closed")] += 1
            self.stats.dropped += len(self.queue)
            self.queue.clear()
            self._room.set()

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

    # ------------------------------------------------------------ writing

    async def run_writer(self) -> None:
        ws = self.ws
        queue = self.queue
        stats = self.stats
        protocol = self.protocol
        wake = self._wake
        try:
            while True:
                if not queue:
                    wake.clear()
                    if self.heartbeat_s is None:
                        await wake.wait()
                        continue
                    try:
                        await asyncio.wait_for(wake.wait(), self.heartbeat_s)
                    except TimeoutError:
                        if self.gone is None:
                            await ws.send_bytes(b"\x00")
                            stats.heartbeats += 1
                    continue
                message, recv_ns = queue.popleft()
                self._room.set()
                if message is None:
                    code, reason = self._close or (1000, "")
                    await ws.close(code=code, message=close_reason(reason))
                    return
                if type(message) is bytes:
                    await ws.send_bytes(message)
                else:
                    await ws.send_str(message)  # type: ignore[arg-type]
                stats.messages[protocol] += 1
                stats.bytes[protocol] += len(message)
                if recv_ns:
                    stats.observe_latency((time.time_ns() - recv_ns) / 1e9)
                transport = self.request.transport
                while (
                    transport is not None
                    and transport.get_write_buffer_size() > _TRANSPORT_HIGH
                    and not transport.is_closing()
                ):
                    await asyncio.sleep(_TRANSPORT_POLL_S)  # the client is not reading
        except (ConnectionError, RuntimeError) as exc:
            if self.gone is None:
                self.gone = "error"
                self.stats.disconnects[(self.protocol, "error")] += 1
                log.info("client connection failed", protocol=protocol, error=str(exc)[:120])
