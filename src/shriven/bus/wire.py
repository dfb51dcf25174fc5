"""The bus's hot loops on the NATS client protocol itself, over nats-py's connection.

nats-py's own per-message work was the floor of both ends (benchmarks/bus.py): ``publish``
validates and builds each HPUB on its own, and every message received becomes a ``Msg`` with
its headers parsed into a dict (a generator per header name), which a pull ``fetch`` then
queues one by one. Here the publisher joins a whole burst of HPUB frames into one write, and
the sink takes its pull consumer's messages as the parser hands them over (reply subject,
payload, raw header block) and acks a batch in one write.

nats-py still owns the connection: connecting, credentials, TLS, PING/PONG, reconnecting and
failing over to another server (subscriptions come back with their sid), stream and consumer
management. This is the one module that touches nats-py's private parts: ``Client._send_command``
and ``_flush_pending`` (what ``publish`` ends with), ``Client._process_msg`` (what its parser
calls for each MSG/HMSG) and ``Subscription._id`` (the sid). tests/bus/test_wire.py holds them to
their behaviour on a real server.

The frames (docs.nats.io, "Client Protocol"): ``HPUB <subject> <reply> <header bytes> <total
bytes>\\r\\n<headers><payload>\\r\\n`` with headers ``NATS/1.0\\r\\n(Name: value\\r\\n)*\\r\\n``; an
ack is ``PUB <reply> 0\\r\\n\\r\\n``. A pull request is a message to
``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`` with ``{"batch": n, "expires": ns}``; the
server ends one that cannot be filled with a status message (an empty payload whose header
block starts ``NATS/1.0 408``; 404 for no messages, 409 for the consumer's problems).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from nats.aio.client import Client

__all__ = ["PullInbox", "ack_frames", "header_block", "header_value", "hpub_frame", "send_raw"]

_CRLF: Final = b"\r\n"
_TROUBLE_PAUSE_S: Final = 0.5
_STATUS: Final = b"NATS/1.0 "


def header_block(headers: Sequence[tuple[str, str]]) -> bytes:
    """``NATS/1.0`` and ``Name: value`` lines, as HPUB carries them (names and values are ours:
    tokens and digits, no CR or LF)."""
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return f"NATS/1.0\r\n{lines}\r\n".encode()


def hpub_frame(subject: str, reply: str, headers: bytes, payload: bytes) -> bytes:
    h = len(headers)
    line = f"HPUB {subject} {reply} {h} {h + len(payload)}\r\n".encode()
    return b"".join((line, headers, payload, _CRLF))


def ack_frames(replies: Sequence[bytes]) -> bytes:
    """One ``+ACK`` (an empty message) to each reply subject."""
    return b"".join([b"PUB " + r + b" 0\r\n\r\n" for r in replies])


def header_value(block: bytes, name: bytes) -> str | None:
    """The value of header ``name`` (exact case, as JetStream reads ``Nats-Msg-Id``) in a raw
    header block, or None."""
    key = _CRLF + name + b":"
    i = block.find(key)
    if i < 0:
        return None
    i += len(key)
    j = block.find(_CRLF, i)
    return block[i : j if j >= 0 else len(block)].strip().decode("utf-8", "replace")


async def send_raw(nc: Client, data: bytes) -> None:
    """Queue protocol bytes on the connection and have the flusher write them, as ``publish``
    does with the one frame it builds. The caller checks ``nc.is_connected`` first: bytes queued
    while disconnected are written after the reconnect."""
    await nc._send_command(data)
    queue = nc._flush_queue
    if queue is not None and queue.empty():
        await nc._flush_pending()


# (subject, reply subject, payload, header block or b"")
RawMsg = tuple[bytes, bytes, bytes, bytes]


class PullInbox:
    """A pull consumer's deliveries, taken from the parser as they come.

    One pull request is open at a time; :meth:`fetch` returns what it brought so far soon after
    the first message (``linger_s``), not when it is filled: a batch of 1000 took 200 ms to fill
    at 5,000 records/s, and that wait was most of the latency to the archive. The request stays
    open and its later messages wait here for the next fetch; a new one goes out as soon as it
    is filled or ended by the server (before the caller stores what it got, so the next
    messages arrive meanwhile). A message of a request given up on here (no answer in time)
    lands in a later fetch: the server redelivers what is not acked, so nothing depends on
    which request a message answered."""

    def __init__(self, nc: Client, stream: str, consumer: str) -> None:
        self._nc = nc
        self._api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.subject = nc.new_inbox()
        self._sid = -1
        self._msgs: list[RawMsg] = []
        self._want = 0  # messages the open request may still bring
        self._open = False
        self._done = asyncio.Event()  # the open request was filled or ended
        self._came = asyncio.Event()  # a message or a status came since the last fetch
        self._trouble = False  # the open request was ended by a status other than 404/408
        self.statuses: dict[str, int] = {}  # status lines other than 404/408, counted
        self.on_status: Callable[[str], None] | None = None

    async def start(self) -> None:
        sub = await self._nc.subscribe(self.subject)
        self._sid = sub._id
        _route(self._nc, self._sid, self._deliver)

    def _deliver(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        if not data and headers and headers.startswith(_STATUS):
            status = headers[len(_STATUS) :].split(_CRLF, 1)[0].decode("utf-8", "replace")
            if status.startswith("100"):
                return  # a heartbeat ends nothing
            if not status.startswith(("404", "408")):
                self.statuses[status] = self.statuses.get(status, 0) + 1
                self._trouble = True
                if self.on_status is not None:
                    self.on_status(status)
            self._done.set()
            self._came.set()
            return
        self._msgs.append((subject, reply, data, headers or b""))
        self._came.set()
        self._want -= 1
        if self._want <= 0:
            self._done.set()

    async def fetch(self, batch: int, expires_s: float, linger_s: float = 0.002) -> list[RawMsg]:
        """What came, up to about ``batch`` messages (none when nothing came in ``expires_s``)."""
        if not self._open:
            await self._ask(batch, expires_s)
        if not self._msgs:
            try:
                await asyncio.wait_for(self._came.wait(), expires_s + 1.0)
            except TimeoutError:
                self._open = False  # no answer at all (a reconnect lost it): ask again
                return []
        if self._msgs and not self._done.is_set():
            await asyncio.sleep(linger_s)  # the rest of the burst
        msgs, self._msgs = self._msgs, []
        self._came.clear()
        if self._done.is_set():
            if self._trouble and not msgs:
                # the server refused the request (409: a consumer deleted, a leader changing):
                # ask again after a pause, not at once and for ever
                await asyncio.sleep(_TROUBLE_PAUSE_S)
            self._trouble = False
            await self._ask(batch, expires_s)
        return msgs

    async def _ask(self, batch: int, expires_s: float) -> None:
        self._want = batch
        self._done.clear()
        self._open = True
        request = json.dumps({"batch": batch, "expires": int(expires_s * 1e9)}).encode()
        await self._nc.publish(self._api, request, reply=self.subject)

    async def ack(self, replies: Sequence[bytes]) -> None:
        if replies:
            await send_raw(self._nc, ack_frames(replies))

    async def release(self) -> None:
        """Hand back what came and was not fetched (a NAK each: the server sends it again at
        once, to whichever sink asks next, instead of after the ack wait)."""
        msgs, self._msgs = self._msgs, []
        replies = [r for _s, r, _d, _h in msgs if r]
        if replies and self._nc.is_connected:
            await send_raw(self._nc, b"".join([b"PUB " + r + b" 4\r\n-NAK\r\n" for r in replies]))
            await self._nc.flush()


_Deliver = Callable[[bytes, bytes, bytes, bytes | None], None]
_ROUTES: Final = "_shriven_raw_routes"


def _route(nc: Client, sid: int, deliver: _Deliver) -> None:
    """Messages for ``sid`` go to ``deliver`` instead of becoming a Msg; the rest as before."""
    routes: dict[int, _Deliver] | None = getattr(nc, _ROUTES, None)
    if routes is None:
        routes = {}
        setattr(nc, _ROUTES, routes)
        original: Callable[..., Awaitable[None]] = nc._process_msg

        async def process_msg(
            sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
        ) -> None:
            to = routes.get(sid)
            if to is None:
                await original(sid, subject, reply, data, headers)
            else:
                to(subject, reply, data, headers)

        nc._process_msg = process_msg  # type: ignore[method-assign]
    routes[sid] = deliver
