"""The publisher: every record the recorder made durable, to JetStream, once, in WAL order.

Live path: a durable tap (``Publisher.tap``) hands each fsynced batch over; it only appends to a
bounded buffer, so recording never waits for the bus. When the bus is slow or down the buffer
overflows and is dropped, and the publisher later reads what it missed back from the WAL
(``catch-up``, also done at start for what earlier runs left unpublished, across segment rotation).

Each record goes out with its ``Nats-Msg-Id`` (recorder : run : stream : seq). On a stream that
allows it (``allow_batched``, nats-server 2.14+) records go out as JetStream fast-ingest batches
(bus/fastingest.py): the server acks every FLOW messages (and on our ping when the feed pauses)
instead of once per record, which was half of the publisher's CPU. Elsewhere each record has a
reply subject of ours and its own ack. Either way a negative ack, a gap, a missing ack (after
``ack_timeout_s``) or a lost connection sends what is not acknowledged again with the same id,
so JetStream's duplicate window drops what it already stored. The acknowledged prefix is saved
atomically (bus/position.py) at most every ``_SAVE_EVERY_S`` and at the end: a killed recorder
resumes from it, re-sending at most what was in flight, which the duplicate window absorbs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nats.aio.client import Client
from nats.aio.msg import Msg

from shriven.bus import fastingest as fi
from shriven.bus.connect import BusConfigError, connect, ensure_stream, error_text
from shriven.bus.options import BusOptions, check_options
from shriven.bus.position import Frontier, load_position, position_path, save_position
from shriven.bus.subjects import (
    HEADER_MSG_ID,
    HEADER_RECV_NS,
    HEADER_TYPE,
    HEADER_VERSION,
    LOB_STREAM,
    TYPE_TOKENS,
    SubjectCache,
)
from shriven.bus.wire import hpub_frame, send_raw
from shriven.events import (
    STREAM_OF_TYPE,
    WIRE_VERSION,
    BookSnapshot,
    Record,
    Status,
    StatusKind,
    decode_wires,
    encode_record,
    stream_of,
)
from shriven.logging import get_logger
from shriven.wal import WalReader
from shriven.wal.format import segment_number

log = get_logger("shriven.bus.publisher")

_SAVE_EVERY_S = 0.5
_CHECK_EVERY_S = 0.2
_RETRY_AFTER_NAK_S = 0.5
_CONNECT_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
# The publisher shares the recorder's event loop: it gives the loop back this often, so a
# publisher that cannot keep up lags rather than holding up the recorder's tasks.
_YIELD_EVERY = 500
_CLOSING_KEPT = 64  # ended batches whose last ack may still come
LAGGING_AFTER_S = 10.0  # /health says "publisher lagging" past this


@dataclass(slots=True)
class PublisherStats:
    state: str = "starting"  # connecting, catching_up, live, disabled, stopped
    connected: bool = False
    acked: int = 0  # records acknowledged by the stream since start
    duplicates: int = 0  # of which the stream already held (a retry's earlier copy)
    retries: int = 0
    catchups: int = 0
    buffer_overflows: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    last_error: str = ""
    disabled: str = ""
    lag_records: int = 0
    lag_seconds: float = 0.0

    def error(self, kind: str, text: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = text


@dataclass(slots=True)
class _Out:
    subject: str
    payload: bytes
    msg_id: str
    headers: bytes  # the header block (bus/wire.py)
    run: int
    stream: str
    seq: int
    recv_ns: int
    sent_at: float = 0.0
    retry_at: float = 0.0
    acked: bool = False


@dataclass(slots=True)
class _Batch:
    """One fast-ingest batch: its id, and the tokens sent in it not yet acknowledged."""

    id: str
    inbox: str
    subject: str  # of its first message: pings and the end of batch go there
    prefix: str = ""
    seq: int = 0  # the last batch seq sent
    base: int = 1  # the batch seq of tokens[0]
    tokens: deque[int] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.prefix = fi.reply_prefix(self.inbox, self.id)


def _is_start(r: Record) -> bool:
    return type(r) is Status and r.venue == "system" and r.kind == StatusKind.STARTED


class Publisher:
    def __init__(self, options: BusOptions, data_dir: Path) -> None:
        self.options = options
        self.data_dir = Path(data_dir)
        self.stats = PublisherStats()
        self._position_path = position_path(self.data_dir, options.stream)
        self.position, warning = load_position(
            self._position_path, options.recorder, options.stream
        )
        if warning:
            log.warning(warning)
        self._buffer: deque[tuple[int, Sequence[Record]]] = deque()
        self._buffered = 0
        self._run = -1  # this process's run (the started marker's recv_ns), from the tap
        self._durable = Frontier()  # what the tap delivered (this run)
        self._sent = self.position.acked.copy()
        self._inflight: OrderedDict[int, _Out] = OrderedDict()
        self._naked: list[int] = []  # tokens whose ack was negative: sent again after a pause
        self._next_token = 0
        self._need_catchup = True
        self._wake: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._nc: Client | None = None
        self._inbox = ""
        self._saved_acked = -1
        self._oldest_pending_ns = 0
        self._problem = check_options(options)
        self._stopping = False
        self._warned: set[str] = set()
        # fast-ingest batch state (see bus/fastingest.py); _fast is False on a stream without it
        self._subject = SubjectCache(options.prefix)
        self._recorder = options.recorder
        self._version = str(WIRE_VERSION)
        self._fast = False
        self._batch: _Batch | None = None  # the batch being sent
        self._closing: dict[str, _Batch] = {}  # ended by us, waiting for the server's last ack
        self._batch_failed = ""  # why the batches must be restarted ("" while all is well)
        self._last_send = 0.0
        self._frames: list[bytes] = []  # HPUB frames built, not yet written (_flush)

    # ------------------------------------------------------------------ the tap (recorder loop)

    def tap(self, batch: Sequence[Record]) -> None:
        """Durable tap: O(1) per batch, never blocks, never raises."""
        if self._run < 0:
            for r in batch:
                if _is_start(r):
                    self._run = r.recv_ns
                    break
            else:
                return  # records before our own start marker: catch-up reads them
        if not self._oldest_pending_ns:
            self._oldest_pending_ns = batch[0].recv_ns
        self._buffer.append((self._run, batch))
        self._buffered += len(batch)
        if self._buffered > self.options.buffer_records:
            self._overflow()
        if self._wake is not None:
            self._wake.set()

    def snapshot_tap(self, snapshots: Sequence[Record]) -> None:
        """Durable tap of the LOB WAL: a round of book snapshots, published live after the
        records before it. Catch-up does not read the LOB WAL: snapshots dropped with an
        overflowing buffer, or in flight when the recorder died, are not sent again (derived
        data; the next round has every book)."""
        if self._run >= 0 and snapshots:
            self.tap(snapshots)

    def _overflow(self) -> None:
        """Too much waiting: forget the buffered records (noting how far they reach) and read
        them back from the WAL later. Book snapshots are not read back, so they are not noted:
        they would count as lag for ever."""
        for run, batch in self._buffer:
            if type(batch[0]) is not BookSnapshot:
                self._note_durable(run, batch)
        self._buffer.clear()
        self._buffered = 0
        self._need_catchup = True
        self.stats.buffer_overflows += 1

    def _note_durable(self, run: int, batch: Sequence[Record]) -> None:
        last: dict[str, int] = {}
        if type(batch[0]) is BookSnapshot:  # a snapshot round (snapshot_tap)
            last[LOB_STREAM] = batch[-1].seq
        else:
            for r in batch:
                last[stream_of(r)] = r.seq
        d = self._durable
        for stream, seq in last.items():
            d.advance(run, stream, seq)

    # ------------------------------------------------------------------ health

    def health(self) -> tuple[dict[str, object], list[str]]:
        s = self.stats
        self._update_lag()
        section: dict[str, object] = {
            "state": s.state,
            "connected": s.connected,
            "servers": self.options.shown_urls,
            "stream": self.options.stream,
            "fast_ingest": self._fast,
            "lag_records": s.lag_records,
            "lag_seconds": round(s.lag_seconds, 3),
            "acked": s.acked,
            "duplicates": s.duplicates,
            "retries": s.retries,
            "catchups": s.catchups,
            "buffer_overflows": s.buffer_overflows,
            "errors": dict(s.errors),
            "last_error": s.last_error or None,
        }
        problems = []
        if s.disabled:
            problems.append(f"publisher disabled: {s.disabled}")
        elif s.lag_seconds > LAGGING_AFTER_S:
            problems.append(f"publisher lagging {s.lag_seconds:.0f} s")
        return section, problems

    def _update_lag(self) -> None:
        s = self.stats
        d, a = self._durable, self.position.acked
        records = sum(
            seq - (a.seqs.get(stream, 0) if a.run == d.run else 0) for stream, seq in d.seqs.items()
        )
        records += self._buffered
        # records of earlier runs that catch-up has sent and that are not acked yet
        records += sum(1 for o in self._inflight.values() if o.run != self._run and not o.acked)
        s.lag_records = max(0, records)
        if self._inflight:
            oldest = next(iter(self._inflight.values())).recv_ns
        else:
            oldest = self._oldest_pending_ns
        pending = self._inflight or self._buffer or self._need_catchup
        s.lag_seconds = max(0.0, (time.time_ns() - oldest) / 1e9) if oldest and pending else 0.0

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Publish until cancelled; problems are logged once and shown on /health, never
        raised: recording goes on."""
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        if self._problem:
            self._disable(self._problem)
            return
        saver = asyncio.create_task(self._save_loop(), name="shriven-publish-position")
        try:
            await self._publish_forever()
        finally:
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver
            self._save()

    def _disable(self, reason: str) -> None:
        self.stats.disabled = reason
        self.stats.state = "disabled"
        self.stats.error("config", reason)
        log.error(f"not publishing: {reason}; recording goes on")

    async def _publish_forever(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                await self._connect()
                attempt = 0
                await self._session()
            except BusConfigError as exc:
                self._disable(str(exc))
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._connect_error(f"NATS at {self.options.shown_urls}: {error_text(exc)}")
                self._need_catchup = True  # a batch may have been cut short: the WAL has it
                await self._close()
                delay = _CONNECT_BACKOFF_S[min(attempt, len(_CONNECT_BACKOFF_S) - 1)]
                attempt += 1
                await asyncio.sleep(delay)

    async def _connect(self) -> None:
        self.stats.state = "connecting"

        async def down() -> None:
            self.stats.connected = False

        async def up() -> None:
            self.stats.connected = True
            self._resend_all()

        nc = await connect(
            self.options,
            name=f"shriven-publisher-{self.options.recorder}",
            on_error=self._connect_error,
            on_disconnect=down,
            on_reconnect=up,
        )
        self._nc = nc
        js = nc.jetstream(timeout=self.options.ack_timeout_s)
        info, warning = await ensure_stream(js, self.options)
        if warning and warning not in self._warned:
            self._warned.add(warning)
            log.warning(warning)
        self._fast = bool(info.config.allow_batched)
        if not self._fast and "batched" not in self._warned:
            self._warned.add("batched")
            log.warning(
                f"stream {self.options.stream} does not allow fast batch publishing "
                "(allow_batched, nats-server 2.14+): one ack per record, several times slower"
            )
        self._inbox = nc.new_inbox()
        self._batch = None  # a new connection starts a new batch
        self._closing.clear()
        await nc.subscribe(f"{self._inbox}.>", cb=self._on_ack)
        self.stats.connected = True
        log.info(
            "publishing",
            servers=self.options.shown_urls,
            stream=self.options.stream,
            recorder=self.options.recorder,
        )
        self._resend_all()

    def _connect_error(self, text: str) -> None:
        self.stats.connected = False
        self.stats.error("connect", text)
        if text not in self._warned:
            self._warned.add(text)
            log.warning(f"not publishing for now: {text}; retrying, recording goes on")

    async def _session(self) -> None:
        checker = asyncio.create_task(self._check_acks(), name="shriven-publish-acks")
        try:
            while not self._stopping:
                if self._need_catchup and self._run >= 0:
                    await self._catch_up()
                    continue
                if self._batch_failed:
                    await self._restart_batch()
                    continue
                if self._buffer:
                    self.stats.state = "live"
                    run, batch = self._buffer.popleft()
                    self._buffered -= len(batch)
                    self._note_durable(run, batch)
                    for i, r in enumerate(batch, 1):
                        await self._send(run, r)
                        if not i % _YIELD_EVERY:
                            await self._flush()
                            await asyncio.sleep(0)
                    await self._flush()
                    continue
                await self._flush()
                assert self._wake is not None
                self._wake.clear()
                if self._batch is not None:
                    await self._end_batch()  # the feed paused: its end brings the last acks
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                if checker.done():
                    checker.result()
        finally:
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await checker

    # ------------------------------------------------------------------ catch-up

    async def _catch_up(self) -> None:
        """Send what the WAL holds past the sent prefix: earlier runs whole, this run as far
        as it is durable. Reads on a thread, a frame at a time."""
        self._need_catchup = False
        self.stats.state = "catching_up"
        self.stats.catchups += 1
        pos = self.position
        chunks: queue.Queue[tuple[int, int, list[tuple[int, Record]]] | None] = queue.Queue(8)
        stop = threading.Event()
        reader = threading.Thread(
            target=_read_wal,
            args=(self.data_dir / "ticks", pos.scan_from, pos.scan_run, chunks, stop),
            name="shriven-publish-catchup",
            daemon=True,
        )
        reader.start()
        first_unacked: tuple[int, int] | None = None
        last_seen = (pos.scan_from, pos.scan_run)
        sent = 0
        try:
            while True:
                chunk = await asyncio.to_thread(chunks.get)
                if chunk is None:
                    break
                seg, seg_run, records = chunk
                last_seen = (seg, seg_run)
                acked = self.position.acked
                for run, r in records:
                    stream = stream_of(r)
                    if first_unacked is None and not acked.covers(run, stream, r.seq):
                        first_unacked = (seg, seg_run)
                    if self._sent.covers(run, stream, r.seq):
                        continue
                    if run == self._run and not self._durable.covers(run, stream, r.seq):
                        continue  # not durable yet: the tap brings it
                    if run > self._run:
                        continue
                    await self._send(run, r)
                    sent += 1
                    if not sent % _YIELD_EVERY:
                        await self._flush()
                        await asyncio.sleep(0)
                await self._flush()
        except BaseException:
            self._need_catchup = True  # cut short: read again next time
            raise
        finally:
            stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    chunks.get_nowait()
        pos.scan_from, pos.scan_run = first_unacked or last_seen
        if sent:
            log.info("caught up from the WAL", records=sent)

    # ------------------------------------------------------------------ sending and acks

    async def _send(self, run: int, r: Record) -> None:
        assert self._room is not None
        if self._batch_failed:
            await self._restart_batch()
        while len(self._inflight) >= self.options.max_in_flight:
            await self._flush()
            if self._batch_failed:
                await self._restart_batch()
                continue
            if self._batch is not None:
                await self._end_batch()
            self._room.clear()
            await self._room.wait()
        t = type(r)
        if t is BookSnapshot:
            venue = r.venue  # type: ignore[union-attr]
            stream = LOB_STREAM
        else:
            venue = stream = STREAM_OF_TYPE.get(t) or r.venue  # type: ignore[union-attr]
        seq = r.seq
        msg_id = f"{self._recorder}:{run}:{stream}:{seq}"
        out = _Out(
            self._subject(r, venue),
            encode_record(r),
            msg_id,
            (
                f"NATS/1.0\r\n{HEADER_MSG_ID}: {msg_id}\r\n{HEADER_TYPE}: {TYPE_TOKENS[t]}\r\n"
                f"{HEADER_VERSION}: {self._version}\r\n{HEADER_RECV_NS}: {r.recv_ns}\r\n\r\n"
            ).encode(),
            run,
            stream,
            seq,
            r.recv_ns,
        )
        token = self._next_token
        self._next_token += 1
        self._inflight[token] = out
        self._sent.advance(run, stream, seq)
        await self._publish(token, out)

    async def _publish(self, token: int, out: _Out) -> None:
        nc = self._nc
        now = out.sent_at = time.monotonic()
        out.retry_at = 0.0
        if nc is None or not nc.is_connected:
            return  # the ack checker sends it again once connected
        if len(out.payload) > nc.max_payload:  # the server would close the connection
            self.stats.error("publish", f"{out.msg_id} is larger than the server's max_payload")
            return
        if self._fast:
            b = self._batch
            if b is not None and now - self._last_send > fi.IDLE_S:
                # the server may have dropped the quiet batch: start afresh, re-sending
                # what it left unacknowledged (this message included)
                self._batch_failed = "idle"
                await self._restart_batch()
                return
            if b is None:
                b = self._batch = _Batch(uuid.uuid4().hex, self._inbox, out.subject)
            b.seq += 1
            b.tokens.append(token)
            self._last_send = now
            reply = fi.reply_subject(b.prefix, b.seq, fi.START if b.seq == 1 else fi.ADD)
        else:
            reply = f"{self._inbox}.{token}"
        self._frames.append(hpub_frame(out.subject, reply, out.headers, out.payload))
        if len(self._frames) >= _YIELD_EVERY:
            await self._flush()

    async def _flush(self) -> None:
        """Write the frames built since the last flush, in one write (bus/wire.py)."""
        frames, nc = self._frames, self._nc
        if not frames:
            return
        self._frames = []
        if nc is None or not nc.is_connected:
            return  # what they carried is sent again once connected
        try:
            await send_raw(nc, b"".join(frames))
        except Exception as exc:
            self.stats.error("publish", f"publish failed: {error_text(exc)}")

    # ------------------------------------------------------------------ fast-ingest batches

    async def _end_batch(self) -> None:
        """End the batch being sent (an end-of-batch commit, which stores nothing): the server
        answers with the count stored, acknowledging the tail short of FLOW messages, and does
        not hold the batch for its 10 s timeout."""
        await self._flush()  # the end goes after the batch's messages
        b, nc = self._batch, self._nc
        self._batch = None
        if b is None or not b.seq or nc is None or not nc.is_connected:
            return
        self._closing[b.id] = b
        while len(self._closing) > _CLOSING_KEPT:
            del self._closing[next(iter(self._closing))]
        try:
            await nc.publish(b.subject, b"", reply=fi.reply_subject(b.prefix, b.seq + 1, fi.EOB))
        except Exception as exc:
            self.stats.error("publish", f"publish failed: {error_text(exc)}")

    async def _restart_batch(self) -> None:
        """A batch failed (gap, error, lost ack, reconnect, a quiet batch): send everything not
        acknowledged again, in order, in a new batch; the stream drops by Nats-Msg-Id what it
        had stored."""
        reason, self._batch_failed = self._batch_failed, ""
        pending = [t for t, out in self._inflight.items() if not out.acked]
        # The batches ended before keep their place in _closing: a late ack from one still
        # counts. Dropping them made a loaded machine, whose acks took longer than the ack
        # timeout, send the same records again and again without ever taking an ack.
        await self._end_batch()
        if pending and reason != "idle":
            log.info("publishing again what a batch left unacknowledged", reason=reason,
                     records=len(pending))  # fmt: skip
        for token in pending:
            out = self._inflight.get(token)
            if out is not None and not out.acked:
                self.stats.retries += 1
                await self._publish(token, out)
        await self._flush()

    def _on_batch_reply(self, batch: str, data: bytes) -> None:
        b = self._batch if self._batch is not None and self._batch.id == batch else None
        b = b or self._closing.get(batch)
        if b is None:
            return  # a batch given up: what it left unacknowledged was sent again
        reply = fi.parse_reply(data)
        if reply.kind == fi.FAILED:
            self.stats.error("nak", f"batch {batch}: {reply.text}")
        else:
            self._acked_through(b, reply.seq)
        if reply.kind == fi.ACK:
            return
        self._closing.pop(batch, None)
        if b is self._batch:
            self._batch = None
        inflight = self._inflight
        short = any(t in inflight and not inflight[t].acked for t in b.tokens)
        if reply.kind == fi.FAILED or short:
            self._batch_failed = reply.text or "the server ended the batch short"
            if self._room is not None:
                self._room.set()
            if self._wake is not None:
                self._wake.set()

    def _acked_through(self, b: _Batch, seq: int) -> None:
        tokens, inflight, n = b.tokens, self._inflight, 0
        while tokens and b.base <= seq:
            out = inflight.get(tokens.popleft())
            b.base += 1
            if out is not None and not out.acked:
                out.acked = True
                n += 1
        if n:
            self.stats.acked += n
            self._advance_acked()

    async def _on_ack(self, msg: Msg) -> None:
        batch = fi.batch_of(msg.subject)
        if batch is not None:
            self._on_batch_reply(batch, msg.data)
            return
        try:
            token = int(msg.subject.rsplit(".", 1)[1])
        except ValueError:
            return
        out = self._inflight.get(token)
        if out is None or out.acked:
            return
        try:
            doc = json.loads(msg.data) if msg.data else {}
        except ValueError:
            doc = {}
        if not isinstance(doc, dict) or "error" in doc or "seq" not in doc:
            err = doc.get("error") if isinstance(doc, dict) else None
            status = (msg.headers or {}).get("Status", "")
            text = f"negative ack for {out.msg_id}: {err or status or 'no ack'}"
            self.stats.error("nak", text)
            out.retry_at = time.monotonic() + _RETRY_AFTER_NAK_S
            self._naked.append(token)
            return
        out.acked = True
        self.stats.acked += 1
        if doc.get("duplicate"):
            self.stats.duplicates += 1
        self._advance_acked()

    def _advance_acked(self) -> None:
        inflight = self._inflight
        done = 0
        for out in inflight.values():
            if not out.acked:
                break
            done += 1
        if not done:
            return
        acked = self.position.acked
        records = 0
        pop = inflight.popitem
        for _ in range(done):
            out = pop(last=False)[1]
            acked.advance(out.run, out.stream, out.seq)
            if out.stream is not LOB_STREAM:
                records += 1  # "published" counts the tick WAL's records, not book snapshots
        if done:
            self.position.published += records
            if not inflight and not self._buffer:
                self._oldest_pending_ns = 0
            if self._room is not None:
                self._room.set()

    def _resend_all(self) -> None:
        """After a (re)connect every unacknowledged message goes out again at once."""
        if self._fast:
            self._batch_failed = "reconnected"
            if self._wake is not None:
                self._wake.set()
            if self._room is not None:
                self._room.set()
            return
        for token, out in self._inflight.items():
            if not out.acked:
                out.retry_at = 0.0
                self._naked.append(token)

    async def _check_acks(self) -> None:
        """Send again what was nak'd (after a pause) or not acked in ``ack_timeout_s``. Only
        the oldest messages are looked at: the scan stops at the first that is not overdue,
        so a large window costs nothing per pass."""
        timeout = self.options.ack_timeout_s
        while True:
            await asyncio.sleep(_CHECK_EVERY_S)
            nc = self._nc
            if nc is None or not nc.is_connected:
                continue
            now = time.monotonic()
            if self._fast:
                first = next(iter(self._inflight.values()), None)
                if first is not None and not first.acked and now - first.sent_at > timeout:
                    self._batch_failed = f"no ack in {timeout:g} s"
                    if self._room is not None:
                        self._room.set()
                    if self._wake is not None:
                        self._wake.set()
                continue
            due: list[tuple[int, _Out]] = []
            if self._naked:
                naked, self._naked = self._naked, []
                for token in naked:
                    out = self._inflight.get(token)
                    if out is None or out.acked:
                        continue
                    if now >= out.retry_at:
                        due.append((token, out))
                    else:
                        self._naked.append(token)
            for token, out in self._inflight.items():
                if now - out.sent_at <= timeout:
                    break
                if not out.acked:
                    due.append((token, out))
            for token, out in due:
                self.stats.retries += 1
                await self._publish(token, out)
            await self._flush()

    # ------------------------------------------------------------------ position

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(_SAVE_EVERY_S)
            self._save()

    def _save(self) -> None:
        if self.position.published == self._saved_acked:
            return
        try:
            save_position(self._position_path, self.position)
            self._saved_acked = self.position.published
        except OSError as exc:
            self.stats.error("position", f"cannot save {self._position_path}: {exc.strerror}")

    async def drain(self, timeout_s: float) -> None:
        """After the recorder stopped: send what is left (the last batches, the stopped
        marker), wait for their acks up to ``timeout_s``, save the position."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.stats.state not in ("disabled",):
            if not self._buffer and not self._inflight and not self._need_catchup:
                break
            if self._wake is not None:
                self._wake.set()
            await asyncio.sleep(0.05)
        self._stopping = True
        self._save()

    async def _close(self) -> None:
        await self._end_batch()
        nc, self._nc = self._nc, None
        self.stats.connected = False
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    async def close(self) -> None:
        self._stopping = True
        await self._close()
        self._save()
        if self.stats.state != "disabled":
            self.stats.state = "stopped"


def _read_wal(
    ticks: Path,
    scan_from: int,
    scan_run: int,
    out: queue.Queue[tuple[int, int, list[tuple[int, Record]]] | None],
    stop: threading.Event,
) -> None:
    """The WAL from segment ``scan_from`` on (``scan_run`` in force at its start), a frame at a
    time as (segment, run at the segment's start, [(run, record)...]); None at the end."""
    try:
        for chunk in _wal_chunks(ticks, scan_from, scan_run):
            while not stop.is_set():
                try:
                    out.put(chunk, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
    finally:
        with contextlib.suppress(queue.Full):
            out.put(None, timeout=5)


def _wal_chunks(
    ticks: Path, scan_from: int, scan_run: int
) -> Iterator[tuple[int, int, list[tuple[int, Record]]]]:
    if not ticks.is_dir():
        return
    reader = WalReader(ticks, strict=False)
    run = scan_run
    seg_run = scan_run
    current = -1
    for frame in reader.frames():
        seg = segment_number(frame.path) or 0
        if seg < scan_from:
            continue
        if seg != current:
            current, seg_run = seg, run
        wires = reader.batch(frame)
        if not wires:
            continue
        try:
            records = decode_wires(wires)
        except ValueError:
            continue  # `shriven wal check` reports it; the reader counted nothing to send
        tagged = []
        for r in records:
            if _is_start(r):
                run = r.recv_ns
            tagged.append((run, r))
        yield seg, seg_run, tagged
