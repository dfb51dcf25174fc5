"""Reading segments: frames with their offsets, records in write order, time-range seeks.

A frame is yielded only after its CRC checks. What happens at a bad frame depends on where it is:

- at the end of the newest segment with no valid frame after it, it is a torn tail (a writer
  crashed or is still writing): reading stops there and ``stats.torn_tail_bytes`` counts it;
- anywhere else it is corruption: strict readers raise :class:`WalCorruptionError` naming the file
  and offset, tolerant readers skip to the next valid frame and count what they skipped.

A frame whose CRC matches but that breaks another rule of docs/wal-format.md (flags, reserved
bytes, ``raw_len``, bytes after the zstd frame, record count, records that do not decode) is
corruption of all its bytes, wherever it is.

Time ranges are half-open, ``start_ns <= recv_ns < end_ns``, on the records' ``recv_ns``.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

import msgpack
import zstandard

from shriven.errors import WalCorruptionError
from shriven.events import WIRE_RECV_NS, Record, RecordDecodeError, decode_batch, unpack_batch
from shriven.wal.format import (
    FLAG_ZSTD,
    FRAME_HEADER,
    FRAME_HEADER_SIZE,
    FRAME_MAGIC,
    FRAME_RESERVED,
    KNOWN_FLAGS,
    MAX_PAYLOAD,
    SEGMENT_HEADER_SIZE,
    list_segments,
    parse_segment_header,
)
from shriven.wal.gc import paused_gc
from shriven.wal.index import covered_end, load_index

_CHUNK = 1 << 20
_MAX_DAMAGE_NOTES = 1000
_SUMMARY_PLACES = 3
_NO_START = -(1 << 63)
_NO_END = 1 << 63


@dataclass(slots=True)
class ReadStats:
    segments_opened: int = 0
    bytes_read: int = 0
    frames_read: int = 0  # valid frames handed out
    frames_skipped: int = 0  # valid frames outside the time range, not decompressed
    records_read: int = 0
    corrupt_frames: int = 0  # damaged places skipped by a tolerant reader
    corrupt_bytes: int = 0  # their bytes (a checksummed frame that does not decode: all of it)
    torn_tail_bytes: int = 0  # incomplete bytes at the end of the newest segment
    # (file, offset, reason, bytes) of each damaged place, the first _MAX_DAMAGE_NOTES
    damage: list[tuple[str, int, str, int]] = field(default_factory=list)

    def skip(self, path: Path, offset: int, nbytes: int, reason: str) -> None:
        """Count one damaged place of ``nbytes`` bytes a tolerant reader skipped."""
        self.corrupt_frames += 1
        self.corrupt_bytes += nbytes
        if len(self.damage) < _MAX_DAMAGE_NOTES:
            self.damage.append((str(path), offset, reason, nbytes))


def skipped_summary(*stats: ReadStats) -> str:
    """One line saying what tolerant reads skipped and where, "" if nothing. Several readers of
    one store may meet the same damaged frame: each place counts once."""
    places: dict[tuple[str, int], tuple[str, int]] = {}
    for st in stats:
        for path, offset, reason, nbytes in st.damage:
            places.setdefault((path, offset), (reason, nbytes))
    frames = max([len(places), *(st.corrupt_frames for st in stats)])
    if not frames:
        return ""
    nbytes = max([sum(n for _r, n in places.values()), *(st.corrupt_bytes for st in stats)])
    shown = [
        f"{Path(path).parent.name}/{Path(path).name} at byte {offset} ({reason})"
        for (path, offset), (reason, _n) in sorted(places.items())[:_SUMMARY_PLACES]
    ]
    more = frames - len(shown)
    return (
        f"skipped {frames} damaged frame{'s' if frames != 1 else ''} ({nbytes:,} bytes): "
        + "; ".join(shown)
        + (f"; and {more} more (`shriven wal check` lists them)" if more > 0 else "")
    )


class Frame(NamedTuple):
    path: Path
    offset: int
    count: int
    min_ns: int
    max_ns: int
    flags: int
    payload: bytes  # decompressed msgpack batch
    length: int = 0  # bytes of the frame in the segment, header included


def _frame_ok(data: bytes | memoryview, pos: int, size: int) -> bool:
    """Is there a complete frame with a good CRC at ``pos`` of ``data`` (``size`` bytes long)?"""
    if pos + FRAME_HEADER_SIZE > size:
        return False
    magic, plen, *_rest, crc = FRAME_HEADER.unpack_from(data, pos)
    if magic != FRAME_MAGIC or plen > MAX_PAYLOAD or pos + FRAME_HEADER_SIZE + plen > size:
        return False
    head = data[pos : pos + FRAME_HEADER_SIZE - 4]
    body = data[pos + FRAME_HEADER_SIZE : pos + FRAME_HEADER_SIZE + plen]
    return zlib.crc32(body, zlib.crc32(head)) == crc


class _SegmentScan:
    """Walks the frames of one open segment over byte ranges, with a read buffer."""

    def __init__(self, f: BinaryIO, path: Path, size: int, stats: ReadStats) -> None:
        self.f = f
        self.path = path
        self.size = size
        self.stats = stats
        self.buf = b""
        self.buf_off = 0

    def get(self, off: int, n: int, limit: int) -> memoryview:
        rel = off - self.buf_off
        if rel < 0 or rel + n > len(self.buf):
            want = max(n, min(_CHUNK, limit - off))
            self.f.seek(off)
            self.buf = self.f.read(want)
            self.buf_off = off
            self.stats.bytes_read += len(self.buf)
            rel = 0
        return memoryview(self.buf)[rel : rel + n]

    def next_valid(self, start: int) -> int | None:
        """Offset of the next complete, checksummed frame at or after ``start``, if any."""
        self.f.seek(start)
        rest = self.f.read(self.size - start)
        self.stats.bytes_read += len(rest)
        i = rest.find(FRAME_MAGIC)
        while i >= 0:
            if _frame_ok(rest, i, len(rest)):
                return start + i
            i = rest.find(FRAME_MAGIC, i + 1)
        return None


def _scan_segment(
    path: Path,
    ranges: list[tuple[int, int | None]],
    *,
    strict: bool,
    is_last: bool,
    stats: ReadStats,
    start_ns: int,
    end_ns: int,
    dctx: zstandard.ZstdDecompressor,
) -> Iterator[Frame]:
    with open(path, "rb") as f:
        stats.segments_opened += 1
        size = os.fstat(f.fileno()).st_size
        head = f.read(SEGMENT_HEADER_SIZE)
        stats.bytes_read += len(head)
        if len(head) < SEGMENT_HEADER_SIZE and is_last:
            stats.torn_tail_bytes += len(head)  # a writer is creating it or crashed doing so
            return
        try:
            parse_segment_header(head, path)
        except ValueError as exc:
            if strict:
                raise WalCorruptionError(str(path), 0, str(exc)) from None
            stats.skip(path, 0, size, str(exc))
            return
        scan = _SegmentScan(f, path, size, stats)
        pos = SEGMENT_HEADER_SIZE
        for rstart, rend in ranges:
            limit = size if rend is None else min(rend, size)
            pos = max(pos, rstart)
            while pos < limit:
                reason = ""
                if pos + FRAME_HEADER_SIZE > size:
                    reason = "incomplete frame header"
                else:
                    hdr = scan.get(pos, FRAME_HEADER_SIZE, limit)
                    magic, plen, count, raw, mn, mx, flags, crc = FRAME_HEADER.unpack(hdr)
                    end = pos + FRAME_HEADER_SIZE + plen
                    if magic != FRAME_MAGIC:
                        reason = "bad frame magic"
                    elif plen > MAX_PAYLOAD or end > size:
                        reason = "frame runs past the end of the segment"
                    else:
                        body = scan.get(pos + FRAME_HEADER_SIZE, plen, limit)
                        if zlib.crc32(body, zlib.crc32(hdr[:-4])) != crc:
                            reason = "checksum mismatch"
                        else:
                            # A checksummed frame: whatever is wrong with it now was written so,
                            # and it is damage (never a torn tail) of all its bytes.
                            bad = _header_problem(flags, hdr, plen, raw)
                            if not bad and (mx < start_ns or mn >= end_ns):
                                stats.frames_skipped += 1
                                pos = end
                                continue
                            payload = b""
                            if not bad:
                                payload, bad = _payload(body, flags, raw, dctx)
                            if bad:
                                if strict:
                                    raise WalCorruptionError(str(path), pos, bad)
                                stats.skip(path, pos, end - pos, bad)
                                pos = end
                                continue
                            stats.frames_read += 1
                            yield Frame(path, pos, count, mn, mx, flags, payload, end - pos)
                            pos = end
                            continue
                nxt = scan.next_valid(pos + 1)
                if nxt is None and is_last:
                    stats.torn_tail_bytes += size - pos
                    return
                if strict:
                    raise WalCorruptionError(str(path), pos, reason)
                stats.skip(path, pos, (size if nxt is None else nxt) - pos, reason)
                if nxt is None:
                    return
                pos = nxt


def _header_problem(flags: int, hdr: memoryview, plen: int, raw: int) -> str:
    """What a checksummed frame header breaks of the format's rules ("" if nothing)."""
    if flags & ~KNOWN_FLAGS:
        return f"unknown frame flag bits 0x{flags & ~KNOWN_FLAGS:02x}"
    if hdr[FRAME_RESERVED] != b"\0\0\0":
        return "frame header reserved bytes are not zero"
    if not flags & FLAG_ZSTD and raw != plen:
        return f"uncompressed frame says raw_len {raw}, payload is {plen} bytes"
    return ""


def _payload(
    body: memoryview, flags: int, raw: int, dctx: zstandard.ZstdDecompressor
) -> tuple[bytes, str]:
    """The frame's msgpack bytes, or what is wrong with them."""
    if not flags & FLAG_ZSTD:
        return bytes(body), ""
    try:
        # max_output_size only bounds frames written without their content size;
        # allow_extra_data=False refuses bytes after the zstd frame
        payload = dctx.decompress(body, max_output_size=raw, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        return b"", f"payload does not decompress: {exc}"
    if len(payload) != raw:
        return b"", f"payload decompresses to {len(payload)} bytes, raw_len says {raw}"
    return payload, ""


def _ranges(path: Path, size: int, start_ns: int, end_ns: int) -> list[tuple[int, int | None]]:
    """Byte ranges of a segment that can hold records in the time range, from its index; what
    the index does not cover is always included."""
    if start_ns == _NO_START and end_ns == _NO_END:
        return [(SEGMENT_HEADER_SIZE, None)]
    entries = load_index(path, size)
    out: list[tuple[int, int | None]] = []
    for e in entries:
        if e.max_ns < start_ns or e.min_ns >= end_ns:
            continue
        if out and out[-1][1] == e.offset:
            out[-1] = (out[-1][0], e.end)
        else:
            out.append((e.offset, e.end))
    cov = covered_end(entries)
    if cov < size:
        out.append((cov, None))
    return out


class WalReader:
    """Reads one WAL directory (e.g. ``data/market/ticks``) in write order.

    ``stats`` accumulates over every read made with this reader."""

    def __init__(self, directory: str | os.PathLike[str], *, strict: bool = True) -> None:
        self.directory = Path(directory)
        self.strict = strict
        self.stats = ReadStats()
        self._dctx = zstandard.ZstdDecompressor()

    def frames(self, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[Frame]:
        lo = _NO_START if start_ns is None else start_ns
        hi = _NO_END if end_ns is None else end_ns
        segments = list_segments(self.directory)
        for i, (_number, path) in enumerate(segments):
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            ranges = _ranges(path, size, lo, hi)
            if not ranges:
                continue
            yield from _scan_segment(
                path,
                ranges,
                strict=self.strict,
                is_last=i == len(segments) - 1,
                stats=self.stats,
                start_ns=lo,
                end_ns=hi,
                dctx=self._dctx,
            )

    def wire(self, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[list]:
        """Fast path: each record's msgpack wire array (``[type, version, recv_ns, seq, ...]``,
        see events.py) without building record objects."""
        return self._scan(start_ns, end_ns, decode=False)

    def records(self, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[Record]:
        return self._scan(start_ns, end_ns, decode=True)

    def _scan(self, start_ns: int | None, end_ns: int | None, decode: bool) -> Iterator:
        lo = _NO_START if start_ns is None else start_ns
        hi = _NO_END if end_ns is None else end_ns
        for frame in self.frames(start_ns, end_ns):
            batch = self._unpack(frame, decode=decode)
            if batch is None:
                continue
            self.stats.records_read += len(batch)
            if lo <= frame.min_ns and frame.max_ns < hi:
                yield from batch
            elif decode:
                yield from (r for r in batch if lo <= r.recv_ns < hi)
            else:
                at = WIRE_RECV_NS
                yield from (w for w in batch if lo <= w[at] < hi)
            # Drop this batch before the next is decoded: with two batches alive at each
            # decode, pymalloc hands out recycled blocks in an ever more scattered order and the
            # scan slowed from 0.55M to 0.27M records/s over 3M records.
            del batch

    def batch(self, frame: Frame) -> tuple:
        """A frame's records as wire tuples (``use_list=False``: what ``decode_wire``'s fast
        paths take). A frame whose payload is not its records raises in a strict reader; a
        tolerant one counts it as skipped and returns ``()``."""
        try:
            with paused_gc():
                wires = unpack_batch(frame.payload)
            _check_count(frame, len(wires))
            return wires
        except (ValueError, msgpack.UnpackException) as exc:
            if self.strict:
                raise WalCorruptionError(str(frame.path), frame.offset, str(exc)) from None
            self.stats.skip(frame.path, frame.offset, frame.length, str(exc))
            return ()

    def _unpack(self, frame: Frame, decode: bool = False) -> list | None:
        try:
            with paused_gc():
                return unpack_frame(frame, decode)
        except (ValueError, msgpack.UnpackException) as exc:  # RecordDecodeError is a ValueError
            if self.strict:
                raise WalCorruptionError(str(frame.path), frame.offset, str(exc)) from None
            self.stats.skip(frame.path, frame.offset, frame.length, str(exc))
            return None


def unpack_frame(frame: Frame, decode: bool = True) -> list:
    """A frame's records (``decode``) or wire arrays (lists); raises ValueError (a
    :class:`RecordDecodeError`) or ``msgpack.UnpackException`` when the payload is not the
    records the frame header says: not a msgpack array, another record count, a record that does
    not decode."""
    if decode:
        batch: list = decode_batch(frame.payload)
    else:
        batch = msgpack.unpackb(frame.payload, raw=False, use_list=True)
        if not isinstance(batch, list):
            raise RecordDecodeError("frame payload is not a msgpack array")
    _check_count(frame, len(batch))
    return batch


def _check_count(frame: Frame, records: int) -> None:
    if records != frame.count:
        raise RecordDecodeError(f"frame says {frame.count} records, payload holds {records}")


def read_records(
    directory: str | os.PathLike[str],
    start_ns: int | None = None,
    end_ns: int | None = None,
    strict: bool = True,
) -> Iterator[Record]:
    """Records of one WAL directory in write order, optionally only ``start_ns <= recv_ns <
    end_ns``; the sparse index lets it skip segments and frames outside the range unread."""
    return WalReader(directory, strict=strict).records(start_ns, end_ns)


def segment_frames(
    path: Path,
    *,
    strict: bool = True,
    is_last: bool = False,
    stats: ReadStats | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> Iterator[Frame]:
    """The valid frames of one segment file, with the damage rules of a directory read
    (``is_last``: the segment is the newest, so a bad end is a torn tail); frames wholly
    outside ``[start_ns, end_ns)`` are passed over unread, as :meth:`WalReader.frames` does."""
    lo = _NO_START if start_ns is None else start_ns
    hi = _NO_END if end_ns is None else end_ns
    size = path.stat().st_size
    return _scan_segment(
        path,
        _ranges(path, size, lo, hi),
        strict=strict,
        is_last=is_last,
        stats=stats if stats is not None else ReadStats(),
        start_ns=lo,
        end_ns=hi,
        dctx=zstandard.ZstdDecompressor(),
    )
