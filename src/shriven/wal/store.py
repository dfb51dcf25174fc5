"""``StoreWriter``: the two WALs of a data directory and its ``metadata.json``.

``data_dir/ticks/`` holds every record received; ``data_dir/lob/`` holds book snapshots.
``metadata.json`` is rewritten atomically (temp file, fsync, rename, fsync of the directory) when
the store opens, when a writer starts a new segment through the store, and on ``write_metadata()``
and ``close()``. Its figures come from the segment indexes, so they are exact whenever written.
The per-stream figures (records and first/last receive time of ``kite``, ``binance``, ``system``
...) are counted as the store appends; for segments written earlier they are carried over from the
previous ``metadata.json`` when it still describes the segment, else counted by reading it once
(after a crash, the segment that was being written).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import msgpack
import zstandard

from shriven.clock import iso_time
from shriven.events import STREAM_OF_TYPE, WIRE_RECV_NS, Record, wire_stream
from shriven.files import atomic_write
from shriven.logging import get_logger
from shriven.wal.format import CODEC_NAMES, FORMAT_VERSION, SEGMENT_HEADER_SIZE, list_segments
from shriven.wal.index import IndexEntry, load_index
from shriven.wal.options import WalOptions
from shriven.wal.reader import ReadStats, _scan_segment
from shriven.wal.writer import WalWriter

METADATA_FILE = "metadata.json"
STREAMS = ("ticks", "lob")

log = get_logger("shriven.wal")

# stream (see events.stream_of) -> [records, first recv_ns, last recv_ns]
StreamCounts = dict[str, list[int]]


def count_streams(counts: StreamCounts, records: Iterable[Record]) -> None:
    """Add ``records`` to ``counts``, per stream."""
    of_type = STREAM_OF_TYPE
    for r in records:
        stream = of_type.get(type(r)) or r.venue  # type: ignore[union-attr]
        ns = r.recv_ns
        c = counts.get(stream)
        if c is None:
            counts[stream] = [1, ns, ns]
        else:
            c[0] += 1
            if ns < c[1]:
                c[1] = ns
            elif ns > c[2]:
                c[2] = ns


# (path, size, mtime_ns) -> counts: a store reopened again and again (the daemon retrying a full
# disk every second, unable to rewrite metadata.json) reads each segment once, not every time
_scanned: dict[tuple[str, int, int], StreamCounts] = {}


def scan_stream_counts(segment: Path) -> StreamCounts:
    """Per-stream counts of a segment, read from its frames (damaged frames are not counted)."""
    st = segment.stat()
    key = (str(segment.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _scanned:
        if len(_scanned) > 256:
            _scanned.clear()
        _scanned[key] = _scan_stream_counts(segment)
    return {name: list(c) for name, c in _scanned[key].items()}


def _scan_stream_counts(segment: Path) -> StreamCounts:
    counts: StreamCounts = {}
    frames = _scan_segment(
        segment,
        [(SEGMENT_HEADER_SIZE, None)],
        strict=False,
        is_last=True,
        stats=ReadStats(),
        start_ns=-(1 << 63),
        end_ns=1 << 63,
        dctx=zstandard.ZstdDecompressor(),
    )
    for frame in frames:
        try:
            batch = msgpack.unpackb(frame.payload, raw=False, use_list=True)
            for w in batch:
                stream = wire_stream(w)
                ns = w[WIRE_RECV_NS]
                c = counts.get(stream)
                if c is None:
                    counts[stream] = [1, ns, ns]
                else:
                    c[0] += 1
                    c[1] = min(c[1], ns)
                    c[2] = max(c[2], ns)
        except (ValueError, TypeError, IndexError, msgpack.UnpackException):
            continue  # `shriven wal check` reports it
    return counts


def _streams_json(counts: StreamCounts) -> dict[str, dict[str, int | str | None]]:
    return {
        name: {
            "records": n,
            "first_ns": first,
            "last_ns": last,
            "first": iso_time(first),
            "last": iso_time(last),
        }
        for name, (n, first, last) in sorted(counts.items())
    }


def _merge(into: StreamCounts, counts: StreamCounts) -> None:
    for name, (n, first, last) in counts.items():
        c = into.get(name)
        if c is None:
            into[name] = [n, first, last]
        else:
            c[0] += n
            c[1] = min(c[1], first)
            c[2] = max(c[2], last)


def segment_summary(
    path: Path,
    active: tuple[int, list[IndexEntry]] | None = None,
    streams: StreamCounts | None = None,
) -> dict[str, object] | None:
    """What one segment holds, from its index (or, for the segment being written, ``active``:
    its size and entries as :meth:`WalWriter.active_segment` read them), with its per-stream
    counts when given; None for a segment removed since it was listed (retention runs on its
    own thread)."""
    if active is None:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        entries = load_index(path, size)
    else:
        size, entries = active
    first = min((e.min_ns for e in entries), default=None)
    last = max((e.max_ns for e in entries), default=None)
    out: dict[str, object] = {
        "file": path.name,
        "bytes": size,
        "frames": sum(e.frames for e in entries),
        "records": sum(e.records for e in entries),
        "first_ns": first,
        "last_ns": last,
        "first": iso_time(first),
        "last": iso_time(last),
    }
    if streams is not None:
        out["by_stream"] = _streams_json(streams)
    return out


def stream_summary(
    directory: Path,
    writer: WalWriter | None = None,
    streams_of: dict[str, StreamCounts] | None = None,
) -> dict[str, object]:
    """What one WAL directory holds; ``streams_of`` maps segment file names to their per-stream
    counts (the store keeps them), and adds the ``by_stream`` totals."""
    # the segment being written first: one that rotation starts meanwhile is read from disk
    active_path, active_size, active_entries = (
        writer.active_segment() if writer is not None else (None, 0, [])
    )
    summaries = [
        segment_summary(
            path,
            (active_size, active_entries) if path == active_path else None,
            None if streams_of is None else streams_of.get(path.name, {}),
        )
        for _n, path in list_segments(directory)
    ]
    segments = [s for s in summaries if s is not None]
    firsts = [s["first_ns"] for s in segments if s["first_ns"] is not None]
    lasts = [s["last_ns"] for s in segments if s["last_ns"] is not None]
    first = min(firsts, default=None)  # type: ignore[type-var]
    last = max(lasts, default=None)  # type: ignore[type-var]
    out: dict[str, object] = {
        "directory": directory.name,
        "records": sum(int(s["records"] or 0) for s in segments),  # type: ignore[call-overload]
        "bytes": sum(int(s["bytes"] or 0) for s in segments),  # type: ignore[call-overload]
        "first_ns": first,
        "last_ns": last,
        "first": iso_time(first),  # type: ignore[arg-type]
        "last": iso_time(last),  # type: ignore[arg-type]
    }
    if writer is not None:
        out["codec"] = CODEC_NAMES[1 if writer.compression else 0]
    if streams_of is not None:
        totals: StreamCounts = {}
        for seg in segments:  # only segments still on disk: old ones may have been archived
            _merge(totals, streams_of.get(str(seg["file"]), {}))
        out["by_stream"] = _streams_json(totals)
    out["segments"] = segments
    return out


def segment_stream_counts(
    directory: Path, known: dict[str, dict[str, object]], skip: Path | None = None
) -> dict[str, StreamCounts]:
    """Segment file name -> per-stream counts, for the segments in ``directory`` now: carried
    from ``known`` (an earlier metadata.json's entries) where it still describes the segment
    (same bytes and records), else counted by reading the segment once."""
    per_segment: dict[str, StreamCounts] = {}
    for _n, path in list_segments(directory):
        if path == skip:
            continue
        try:
            size = path.stat().st_size
        except FileNotFoundError:  # removed since it was listed
            continue
        records = sum(e.records for e in load_index(path, size))
        old = known.get(path.name)
        carried = (
            _counts_from_json(old.get("by_stream"))
            if old is not None and (old.get("bytes"), old.get("records")) == (size, records)
            else None
        )
        if carried is not None:
            per_segment[path.name] = carried
        else:
            log.info("wal_counting_streams", path=str(path), bytes=size)
            per_segment[path.name] = scan_stream_counts(path)
    return per_segment


def store_stream_counts(data_dir: Path) -> dict[str, StreamCounts]:
    """WAL name -> per-stream totals of the segments on disk now (without opening the store for
    writing). metadata.json's totals go stale as soon as old segments are deleted or archived
    from the front; its per-segment entries do not, so the totals are recounted from them (a
    segment they do not describe, such as the one a writer is filling, is read once). {} when
    metadata.json is missing or unreadable: reading every segment is `wal check`'s job."""
    previous = _previous_segments(Path(data_dir) / METADATA_FILE)
    out: dict[str, StreamCounts] = {}
    if not previous:
        return out
    for name in STREAMS:
        totals: StreamCounts = {}
        for counts in segment_stream_counts(Path(data_dir) / name, previous.get(name, {})).values():
            _merge(totals, counts)
        out[name] = totals
    return out


def write_json_atomically(path: Path, document: dict[str, object]) -> None:
    atomic_write(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"), mode=0o644)


class StoreWriter:
    """Opens ``ticks`` and ``lob`` writers under ``data_dir``, both with ``options``;
    ``on_ticks_sealed`` gets each tick segment that rotation seals (see WalWriter.on_sealed)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        options: WalOptions | None = None,
        *,
        on_ticks_sealed: Callable[[Path], None] | None = None,
    ):
        options = options if options is not None else WalOptions()
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ticks = WalWriter.open(self.data_dir / "ticks", options)
        self.ticks.on_sealed = on_ticks_sealed
        try:
            self.lob = WalWriter.open(self.data_dir / "lob", options)
        except Exception:
            self.ticks.close()
            raise
        self._segments_seen = (self.ticks.segments_created, self.lob.segments_created)
        # per WAL, segment file name -> per-stream counts (the open segment's grow as we append)
        self._streams: dict[str, dict[str, StreamCounts]] = {}
        self._streams_lock = threading.Lock()  # appends and metadata() may run on two threads
        # metadata.json is written by the tick appends (a rotation) and by snapshot rounds on
        # another thread: one at a time, so the newest figures are the ones left on disk
        self._metadata_lock = threading.RLock()
        self.last_ticks_counts: StreamCounts = {}  # per stream, the last append_ticks batch
        try:
            self._streams = self._stream_counts_on_open()
            self.write_metadata()
        except Exception:
            self.ticks.close()
            self.lob.close()
            raise

    def _stream_counts_on_open(self) -> dict[str, dict[str, StreamCounts]]:
        previous = _previous_segments(self.data_dir / METADATA_FILE)
        out: dict[str, dict[str, StreamCounts]] = {}
        for name, writer in (("ticks", self.ticks), ("lob", self.lob)):
            per_segment = segment_stream_counts(
                self.data_dir / name, previous.get(name, {}), skip=writer.segment_path
            )
            per_segment[writer.segment_path.name] = {}  # new and empty
            out[name] = per_segment
        return out

    def _count(self, name: str, writer: WalWriter, records: Sequence[Record]) -> StreamCounts:
        """Count ``records`` per stream once: into the segment they went to, and returned."""
        batch: StreamCounts = {}
        count_streams(batch, records)
        with self._streams_lock:
            _merge(self._streams[name].setdefault(writer.segment_path.name, {}), batch)
        return batch

    def append_ticks(self, records: Sequence[Record]) -> int:
        """Append ``records`` as one tick frame; :attr:`last_ticks_counts` says, per stream, how
        many records it held (the recorder's per-stream totals read it instead of counting the
        batch a second time)."""
        n = self.ticks.append(records)
        self.last_ticks_counts = self._count("ticks", self.ticks, records)
        self._metadata_on_rotation()
        return n

    def append_lob(self, records: Sequence[Record]) -> int:
        n = self.lob.append(records)
        self._count("lob", self.lob, records)
        self._metadata_on_rotation()
        return n

    def append_encoded(
        self, wal: str, records: Sequence[bytes], streams: Sequence[str], times: Sequence[int]
    ) -> int:
        """Append records already in their wire form (WalWriter.append_encoded) to the ``ticks``
        or ``lob`` WAL as one frame; ``streams`` and ``times`` are each record's stream (as
        events.wire_stream gives it) and ``recv_ns``, for the per-stream counts."""
        if not records:
            return 0
        writer = self.ticks if wal == "ticks" else self.lob
        n = writer.append_encoded(records, min(times), max(times))
        batch: StreamCounts = {}
        for stream, ns in zip(streams, times, strict=True):
            c = batch.get(stream)
            if c is None:
                batch[stream] = [1, ns, ns]
            else:
                c[0] += 1
                if ns < c[1]:
                    c[1] = ns
                elif ns > c[2]:
                    c[2] = ns
        with self._streams_lock:
            _merge(self._streams[wal].setdefault(writer.segment_path.name, {}), batch)
        if wal == "ticks":
            self.last_ticks_counts = batch
        self._metadata_on_rotation()
        return n

    def _metadata_on_rotation(self) -> None:
        with self._metadata_lock:
            seen = (self.ticks.segments_created, self.lob.segments_created)
            if seen != self._segments_seen:
                self._segments_seen = seen
                self.write_metadata()

    def sync(self) -> None:
        self.ticks.sync()
        self.lob.sync()

    def metadata(self) -> dict[str, object]:
        with self._streams_lock:
            streams = {
                wal: {seg: {k: list(c) for k, c in counts.items()} for seg, counts in per.items()}
                for wal, per in self._streams.items()
            }
        now = time.time_ns()
        return {
            "format": "shriven-wal",
            "format_version": FORMAT_VERSION,
            "updated_ns": now,
            "updated": iso_time(now),
            "streams": {
                "ticks": stream_summary(self.data_dir / "ticks", self.ticks, streams.get("ticks")),
                "lob": stream_summary(self.data_dir / "lob", self.lob, streams.get("lob")),
            },
        }

    def write_metadata(self) -> None:
        with self._metadata_lock:
            write_json_atomically(self.data_dir / METADATA_FILE, self.metadata())

    def close(self) -> None:
        try:
            self.ticks.close()
            self.lob.close()
        finally:
            self.write_metadata()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _previous_segments(path: Path) -> dict[str, dict[str, dict[str, object]]]:
    """WAL name -> segment file -> its entry in an earlier ``metadata.json`` ({} if unreadable)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return {
            name: {seg["file"]: seg for seg in wal.get("segments", []) if "by_stream" in seg}
            for name, wal in document.get("streams", {}).items()
        }
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return {}


def _counts_from_json(by_stream: object) -> StreamCounts | None:
    """The counts an earlier metadata.json recorded; None when they are not readable."""
    try:
        return {
            str(name): [int(v["records"]), int(v["first_ns"]), int(v["last_ns"])]
            for name, v in by_stream.items()  # type: ignore[union-attr]
        }
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
