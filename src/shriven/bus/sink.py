"""``shriven sink``: a durable pull consumer writing what the bus carries into an archive.

The archive holds one shriven store per recorder, ``ARCHIVE/<recorder id>/`` (ticks/, lob/,
metadata.json): each recorder numbers its streams on its own, so one store per recorder keeps
every stream's ``seq`` consecutive and ``wal check``, ``verify-books``, ``replay`` and export
work on ``ARCHIVE/<recorder id>`` as on the recorder's own data directory.

Each payload is stored as it came, as bytes: it is the record's wire form, the bytes a WAL frame
holds (bus/payload.py checks it without decoding it). A fetched batch is written to the stores
and fsynced, and only then acknowledged, each message
by its own ack (an explicit-ack consumer). Acking "all up to the last" (AckAll) loses records: it
also acknowledges messages the server had handed to a sink that then died, or that were in
flight on a node that died, and the server never sends those again. JetStream's duplicate
window is finite, so the sink also drops a record it already holds, by recorder : run : stream :
seq (:class:`Seen`), rebuilt from the archive at start: a recorder that re-publishes after the
window adds nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shriven.bus.connect import BusConfigError, connect, ensure_stream, error_text
from shriven.bus.options import BusOptions, check_options
from shriven.bus.payload import PayloadError, record_head
from shriven.bus.subjects import HEADER_MSG_ID, LOB_STREAM, parse_msg_id
from shriven.bus.wire import PullInbox, RawMsg, header_value
from shriven.errors import ConfigError
from shriven.events import WIRE_RECV_NS, BookSnapshot, wire_is_start, wire_stream
from shriven.logging import get_logger
from shriven.pipeline.lock import DataDirLock
from shriven.wal import StoreWriter, WalOptions, WalReader

log = get_logger("shriven.bus.sink")

MSG_ID_NAME = HEADER_MSG_ID.encode()

# Below the highest seq held, seqs not held are remembered this far back: a retried message can
# arrive after later ones (a nak, then success), never this much later.
HOLE_WINDOW = 200_000


@dataclass(slots=True)
class SeqSet:
    """The seqs of one (recorder, run, stream) held: all up to ``high`` but ``holes``."""

    high: int = 0
    holes: set[int] = field(default_factory=set)

    def add(self, seq: int) -> bool:
        """Hold ``seq``; False when it was held already."""
        high = self.high
        if seq > high:
            if seq > high + 1:
                self.holes.update(range(max(high + 1, seq - HOLE_WINDOW), seq))
                if len(self.holes) > 2 * HOLE_WINDOW:
                    floor = seq - HOLE_WINDOW
                    self.holes = {s for s in self.holes if s >= floor}
            self.high = seq
            return True
        if seq in self.holes:
            self.holes.discard(seq)
            return True
        return False


class Seen:
    """Every (run, stream, seq) one recorder's archive store holds."""

    def __init__(self) -> None:
        self._sets: dict[tuple[int, str], SeqSet] = {}

    def add(self, run: int, stream: str, seq: int) -> bool:
        key = (run, stream)
        s = self._sets.get(key)
        if s is None:
            s = self._sets[key] = SeqSet()
        return s.add(seq)

    def add_wires(self, wires: Iterable[list | tuple]) -> list[int]:
        """Rebuild from a store's tick records in WAL order (runs begin at their started
        marker); the runs' start times, in order."""
        run = 0
        runs: list[int] = []
        for w in wires:
            if wire_is_start(w):
                run = w[2]
                runs.append(run)
            self.add(run, wire_stream(w), w[3])
        return runs

    def add_snapshot_wires(self, wires: Iterable[list | tuple], runs: list[int]) -> None:
        """Rebuild from a store's LOB records: a snapshot belongs to the run that started last
        before it (as verify-books reads them), its seq counts in LOB_STREAM."""
        for w in wires:
            i = bisect_right(runs, w[WIRE_RECV_NS])
            self.add(runs[i - 1] if i else 0, LOB_STREAM, w[3])


@dataclass(slots=True)
class SinkStats:
    received: int = 0
    stored: int = 0
    snapshots: int = 0  # book snapshots stored (in each store's LOB WAL)
    duplicates: int = 0
    refused: int = 0  # messages that are not a shriven record (counted, acknowledged, skipped)
    batches: int = 0


class _Archive:
    """The per-recorder stores under the archive directory, opened on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.stores: dict[str, tuple[StoreWriter, DataDirLock, Seen]] = {}

    def open(self, recorder: str) -> tuple[StoreWriter, Seen]:
        got = self.stores.get(recorder)
        if got is None:
            path = self.root / recorder
            lock = DataDirLock(path)
            lock.acquire()
            seen = Seen()
            ticks, lob = path / "ticks", path / "lob"
            runs = seen.add_wires(WalReader(ticks, strict=False).wire()) if ticks.is_dir() else []
            if lob.is_dir():
                seen.add_snapshot_wires(WalReader(lob, strict=False).wire(), runs)
            log.info("archive store opened", recorder=recorder)
            store = StoreWriter(path, WalOptions(fsync_policy="caller"))
            got = self.stores[recorder] = (store, lock, seen)
        return got[0], got[2]

    def close(self) -> None:
        for store, lock, _seen in self.stores.values():
            with contextlib.suppress(Exception):
                store.close()
            lock.release()
        self.stores.clear()


async def run_sink(
    options: BusOptions,
    archive: Path,
    *,
    subjects: str | None = None,
    durable: str = "shriven-sink",
    batch: int = 5000,
    ack_wait_s: float = 30.0,
    duration: float | None = None,
    stop: asyncio.Event | None = None,
    stats: SinkStats | None = None,
    on_durable: Callable[[list[int]], None] | None = None,
) -> SinkStats:
    """Consume until ``stop`` is set (or ``duration`` seconds); raises ConfigError for settings
    the bus refuses. Reconnects by itself while the server is away. ``on_durable`` gets the
    ``recv_ns`` of each batch's new tick records once they are fsynced (the latency
    benchmark's probe)."""
    problem = check_options(options)
    if problem:
        raise ConfigError(problem)
    stats = stats if stats is not None else SinkStats()
    filt = subjects or f"{options.prefix}.>"
    if not (filt == options.prefix or filt.startswith(f"{options.prefix}.")):
        raise ConfigError(
            f"--subjects {filt!r} is outside the stream's subjects {options.prefix}.>: "
            f"give a filter starting with {options.prefix}."
        )
    arch = _Archive(Path(archive))
    deadline = None if duration is None else time.monotonic() + duration
    try:
        try:
            nc = await connect(options, name=f"shriven-sink-{durable}", give_up_after_s=15)
        except BusConfigError as exc:
            raise ConfigError(str(exc)) from None
        try:
            js = nc.jetstream(timeout=10)
            try:
                await ensure_stream(js, options)
            except BusConfigError as exc:
                raise ConfigError(str(exc)) from None
            await _check_consumer(js, options.stream, durable)
            config = ConsumerConfig(
                durable_name=durable,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=ack_wait_s,
                max_ack_pending=-1,
                filter_subject=filt,
            )
            try:
                # creates (or checks) the consumer; its messages come through PullInbox
                await js.pull_subscribe(filt, durable=durable, stream=options.stream,
                                        config=config)  # fmt: skip
            except nats.js.errors.BadRequestError as exc:
                raise ConfigError(
                    f"cannot use consumer {durable} on stream {options.stream}: "
                    f"{exc.description}; pick another --durable"
                ) from None
            inbox = PullInbox(nc, options.stream, durable)
            inbox.on_status = _status_warning()
            await inbox.start()
            log.info("sinking", stream=options.stream, subjects=filt, archive=str(archive))
            stop = stop if stop is not None else asyncio.Event()
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                try:
                    # What came, soon after it came (bus/wire.py); the pull requests ask for
                    # ``batch``, so a backlog is stored a few thousand records to an fsync.
                    msgs = await inbox.fetch(batch, 0.25)
                except (nats.errors.ConnectionClosedError, nats.errors.NoServersError) as exc:
                    raise ConfigError(f"lost NATS: {error_text(exc)}") from None
                except Exception as exc:  # a server restarting: fetch again
                    log.warning("fetch failed; retrying", error=error_text(exc))
                    await asyncio.sleep(0.5)
                    continue
                if not msgs:
                    continue
                stored = await asyncio.to_thread(_store_batch, arch, msgs, stats)
                if on_durable is not None:
                    on_durable(stored)
                await inbox.ack([m[1] for m in msgs if m[1]])
                stats.batches += 1
            with contextlib.suppress(Exception):
                await inbox.release()
        finally:
            with contextlib.suppress(Exception):
                await nc.close()
    finally:
        arch.close()
    return stats


async def _check_consumer(js: JetStreamContext, stream: str, durable: str) -> None:
    """ConfigError when ``durable`` exists with another ack policy (an older shriven's AckAll
    consumer): it cannot be changed in place."""
    try:
        info = await js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError:
        return
    policy = info.config.ack_policy
    if policy is not None and policy != AckPolicy.EXPLICIT:
        raise ConfigError(
            f"consumer {durable} on stream {stream} acknowledges {policy.value}, the sink needs "
            f"explicit acks: delete it (nats consumer rm {stream} {durable}; the archive's "
            "dedup drops what it then delivers again) or pick another --durable"
        )


def _status_warning() -> Callable[[str], None]:
    warned: set[str] = set()

    def warn(status: str) -> None:
        if status not in warned and len(warned) < 20:
            warned.add(status)
            log.warning(f"the server ended a pull request: {status}; fetching again")

    return warn


def _store_batch(arch: _Archive, msgs: list[RawMsg], stats: SinkStats) -> list[int]:
    """Keep what is new, write it per recorder, fsync: durable before the ack. Payloads are
    stored as received (bus/payload.py checks each); returns the new tick records' recv_ns."""
    ticks: dict[str, _Pending] = {}
    lob: dict[str, _Pending] = {}
    ids = _MsgIds()
    for subject, _reply, data, headers in msgs:
        stats.received += 1
        msg_id = ids.parse(header_value(headers, MSG_ID_NAME) or "")
        if msg_id is None:
            _refuse(stats, subject, "no shriven Nats-Msg-Id header")
            continue
        try:
            head = record_head(data)
        except PayloadError as exc:
            _refuse(stats, subject, f"payload is not a record ({exc})")
            continue
        recorder, run, stream, seq = msg_id
        snapshot = head.type == BookSnapshot.TYPE
        if seq != head.seq or (stream != LOB_STREAM if snapshot else stream != head.stream):
            _refuse(stats, subject, f"payload is not the record {':'.join(map(str, msg_id))}")
            continue
        _store, seen = arch.open(recorder)
        if seen.add(run, stream, seq):
            into = lob if snapshot else ticks
            pending = into.get(recorder)
            if pending is None:
                pending = into[recorder] = _Pending()
            pending.add(data, head.stream, head.recv_ns)
        else:
            stats.duplicates += 1
    for wal, by_recorder in (("ticks", ticks), ("lob", lob)):
        for recorder, p in by_recorder.items():
            store, _seen = arch.open(recorder)
            store.append_encoded(wal, p.payloads, p.streams, p.times)
    for recorder in ticks:
        arch.open(recorder)[0].ticks.sync()
    for recorder in lob:
        arch.open(recorder)[0].lob.sync()
    stats.stored += sum(len(p.payloads) for p in ticks.values())
    stats.snapshots += sum(len(p.payloads) for p in lob.values())
    return [ns for p in ticks.values() for ns in p.times]


@dataclass(slots=True)
class _Pending:
    """One recorder's new records of a batch for one WAL."""

    payloads: list[bytes] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    times: list[int] = field(default_factory=list)

    def add(self, payload: bytes, stream: str, recv_ns: int) -> None:
        self.payloads.append(payload)
        self.streams.append(stream)
        self.times.append(recv_ns)


class _MsgIds:
    """:func:`parse_msg_id` as a tuple, checking each recorder id once (the regular expression
    was most of the parse)."""

    def __init__(self) -> None:
        self._recorders: set[str] = set()

    def parse(self, text: str) -> tuple[str, int, str, int] | None:
        parts = text.split(":")
        if len(parts) != 4:
            return None
        recorder, run, stream, seq = parts
        if recorder not in self._recorders:
            if parse_msg_id(text) is None:
                return None
            self._recorders.add(recorder)
        if not stream:
            return None
        try:
            return recorder, int(run), stream, int(seq)
        except ValueError:
            return None


def _refuse(stats: SinkStats, subject: bytes, why: str) -> None:
    stats.refused += 1
    if stats.refused <= 10:
        log.warning(f"skipping a message on {subject.decode('utf-8', 'replace')}: {why}")
