"""Appending frames to segments: rotation, fsync policy, recovery of a crashed directory.

Durability (what a crash can lose; every ``append`` is one ``write`` into the kernel, so a crash of
the *process* alone never loses a frame ``append`` returned for):

- ``always``: fdatasync after every frame. An OS crash or power loss loses nothing ``append``
  returned for.
- ``interval`` (default, 200 ms): a background thread fdatasyncs when frames are pending, at most
  ``fsync_interval_ms`` apart. An OS crash or power loss loses at most the frames appended in the
  last interval (plus the time one fdatasync takes).
- ``never``: the kernel writes back when it likes (typically within ~30 s on Linux). An OS crash or
  power loss can lose anything not yet written back.
- ``caller``: the caller fsyncs with :meth:`WalWriter.sync` when it chooses; the writer itself
  fsyncs only at segment creation, rotation and close. An OS crash loses what the caller has not
  synced yet.

``records_synced`` counts the records known to be on stable storage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import zstandard

from shriven.errors import WalCorruptionError, WalError
from shriven.events import Record, encode_batch
from shriven.logging import get_logger
from shriven.wal.format import (
    CODEC_NONE,
    CODEC_ZSTD,
    FLAG_ZSTD,
    FRAME_CRC,
    FRAME_HEAD,
    FRAME_MAGIC,
    SEGMENT_HEADER_SIZE,
    list_segments,
    pack_segment_header,
    parse_segment_header,
    segment_name,
)
from shriven.wal.gc import paused_gc
from shriven.wal.index import (
    IndexEntry,
    covered_end,
    load_index,
    pack_entry,
    pack_index_header,
    scan_entries,
    write_index,
)
from shriven.wal.options import (
    DEFAULT_INDEX_INTERVAL,
    DEFAULT_SEGMENT_SIZE,
    FSYNC_POLICIES,
    FsyncPolicy,
    WalOptions,
)
from shriven.wal.reader import ReadStats, _frame_ok, _scan_segment

log = get_logger("shriven.wal")


@dataclass(slots=True)
class RecoveryReport:
    segment: Path | None = None  # the newest segment found, if any
    valid_bytes: int = 0  # bytes kept
    bytes_dropped: int = 0  # torn tail removed
    removed_empty: bool = False  # a segment with no complete header was deleted


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover(directory: Path, index_interval: int = DEFAULT_INDEX_INTERVAL) -> RecoveryReport:
    """Make a crashed directory consistent: truncate the newest segment after its last complete,
    checksummed frame (only if no valid frame follows the damage: damage in the middle is left
    for readers to report, never destroyed), and make sure every segment has a current index."""
    report = RecoveryReport()
    segments = list_segments(directory)
    for _n, path in segments:
        if path.is_symlink():
            # recovery truncates and the writer appends: through a link that is someone else's file
            raise WalError(
                f"cannot open WAL {directory}: {path.name} is a symbolic link to "
                f"{os.readlink(path)}; replace the link with the file itself (or move it out of "
                "the store), then start again"
            )
    if segments:
        report.segment = segments[-1][1]
        _recover_newest(segments[-1][1], report)
    for number, path in list_segments(directory):
        _ensure_index(number, path, index_interval)
    return report


def _recover_newest(path: Path, report: RecoveryReport) -> None:
    size = path.stat().st_size
    if size < SEGMENT_HEADER_SIZE:
        path.unlink()
        path.with_suffix(".idx").unlink(missing_ok=True)
        report.removed_empty = True
        report.bytes_dropped = size
        log.warning("wal_recovery_removed_torn_segment", path=str(path), bytes_dropped=size)
        return
    with open(path, "rb") as f:
        head = f.read(SEGMENT_HEADER_SIZE)
    try:
        parse_segment_header(head)
    except ValueError as exc:
        _set_aside_damaged(path, str(exc), report)
        return
    stats = ReadStats()
    try:
        for _frame in _scan_segment(
            path,
            [(SEGMENT_HEADER_SIZE, None)],
            strict=True,
            is_last=True,
            stats=stats,
            start_ns=1 << 63,  # outside every range: frames are checked, not decompressed
            end_ns=1 << 63,
            dctx=zstandard.ZstdDecompressor(),
        ):
            pass
    except WalCorruptionError as exc:
        log.error("wal_recovery_found_corruption", path=str(path), offset=exc.offset)
        report.valid_bytes = size  # leave it alone; readers report it
        return
    end = size - stats.torn_tail_bytes
    report.valid_bytes = end
    if end < size:
        report.bytes_dropped = size - end
        with open(path, "r+b") as f:
            f.truncate(end)
            os.fsync(f.fileno())
        log.warning(
            "wal_recovery_truncated_torn_tail",
            path=str(path),
            kept_bytes=end,
            bytes_dropped=size - end,
        )


def _ensure_index(number: int, path: Path, index_interval: int) -> None:
    size = path.stat().st_size
    if covered_end(load_index(path, size)) == size:
        return
    try:
        with open(path, "rb") as f:
            created = parse_segment_header(f.read(SEGMENT_HEADER_SIZE)).created_ns
    except ValueError:
        return  # readers report the damaged header
    write_index(path, number, created, scan_entries(path, index_interval))


def _set_aside_damaged(path: Path, reason: str, report: RecoveryReport) -> None:
    """The newest segment's header is unreadable. With no intact frame in it either (e.g. a file
    created just before a power loss, zero-filled), rename it out of the WAL, keeping its bytes;
    otherwise leave it for ``shriven wal check`` to report and a tolerant reader to salvage."""
    data = path.read_bytes()
    i = data.find(FRAME_MAGIC)
    while i >= 0:
        if _frame_ok(data, i, len(data)):
            log.error("wal_recovery_damaged_segment_header", path=str(path), reason=reason)
            return
        i = data.find(FRAME_MAGIC, i + 1)
    aside = path.with_name(path.name + ".damaged")
    os.replace(path, aside)
    path.with_suffix(".idx").unlink(missing_ok=True)
    report.bytes_dropped = len(data)
    log.warning(
        "wal_recovery_set_aside_segment", path=str(path), moved_to=str(aside), reason=reason
    )


def _array_header(n: int) -> bytes:
    """A msgpack array header for ``n`` items (what ``encode_batch`` starts with)."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


class WalWriter:
    """Appends record batches, one frame per ``append``, to a new segment of ``directory``.

    The keyword arguments are the fields of :class:`WalOptions` (``WalWriter.open`` takes one)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        compression: bool = True,
        fsync_policy: FsyncPolicy = "interval",
        fsync_interval_ms: int = 200,
        index_interval: int = DEFAULT_INDEX_INTERVAL,
        compression_level: int = 1,
    ) -> None:
        self.options = WalOptions(  # checks them
            segment_size=segment_size,
            compression=compression,
            compression_level=compression_level,
            fsync_policy=fsync_policy,
            fsync_interval_ms=fsync_interval_ms,
            index_interval=index_interval,
        )
        self.directory = Path(directory)
        self.segment_size = segment_size
        self.compression = compression
        self.fsync_policy = fsync_policy
        self.fsync_interval_ms = fsync_interval_ms
        self.index_interval = index_interval
        self._cctx = zstandard.ZstdCompressor(level=compression_level) if compression else None
        self._codec = CODEC_ZSTD if compression else CODEC_NONE

        self.frames_written = 0
        self.records_written = 0
        self.bytes_written = 0  # on disk: frame headers + (compressed) payloads
        self.raw_bytes_written = 0  # msgpack payload before compression
        # The last frame's msgpack payload (encode_batch of its records), for a reader of the
        # written records that wants them encoded (the live server's process): no second encode
        self.last_payload = b""
        self.records_synced = 0
        self.segments_created = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None

        # Called with a segment's path once rotation has sealed it (under the writer's lock:
        # it must hand the work elsewhere and return, e.g. SidecarIndexer.submit).
        self.on_sealed: Callable[[Path], None] | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._failure: str | None = None
        self._fd = -1
        self._idx_fd = -1
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.recovery = recover(self.directory, index_interval)
            existing = list_segments(self.directory)
            self._number = existing[-1][0] + 1 if existing else 0
            self._open_segment()
        except ValueError as exc:
            raise WalError(
                f"cannot open WAL {self.directory}: newest segment is damaged ({exc}); "
                "run `shriven wal check` on it"
            ) from None
        except OSError as exc:
            raise WalError(f"cannot open WAL {self.directory}: {exc}") from None
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        if fsync_policy == "interval":
            self._syncer = threading.Thread(
                target=self._sync_loop, name=f"wal-sync:{self.directory.name}", daemon=True
            )
            self._syncer.start()

    @classmethod
    def open(cls, directory: str | os.PathLike[str], options: WalOptions) -> WalWriter:
        """A writer for ``directory`` with ``options``."""
        return cls(directory, **dataclasses.asdict(options))

    # ------------------------------------------------------------ segments

    @property
    def segment_path(self) -> Path:
        return self.directory / segment_name(self._number)

    def _open_segment(self) -> None:
        path = self.segment_path
        created = time.time_ns()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        idx_fd = -1
        try:
            os.write(fd, pack_segment_header(self._number, self._codec, created))
            idx_fd = os.open(
                path.with_suffix(".idx"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644
            )
            os.write(idx_fd, pack_index_header(self._number, created))
            if self.fsync_policy != "never":
                os.fdatasync(fd)
                _fsync_dir(self.directory)
        except OSError:
            os.close(fd)
            if idx_fd >= 0:
                os.close(idx_fd)
            raise
        self._fd = fd
        self._idx_fd = idx_fd
        self._offset = SEGMENT_HEADER_SIZE
        self._segment_frames = 0
        self._group: IndexEntry | None = None
        self.segments_created += 1

    def _flush_index_group(self) -> None:
        if self._group is not None:
            os.write(self._idx_fd, pack_entry(self._group))
            self._group = None

    def _close_segment(self) -> None:
        try:
            self._flush_index_group()
            if self.fsync_policy != "never":
                os.fdatasync(self._fd)
                self.records_synced = self.records_written
        finally:
            os.close(self._fd)
            os.close(self._idx_fd)
            self._fd = self._idx_fd = -1

    def _rotate(self) -> None:
        sealed = self.segment_path
        self._close_segment()
        self._number += 1
        self._open_segment()
        if self.on_sealed is not None:
            self.on_sealed(sealed)

    # ------------------------------------------------------------ writing

    def append(self, records: Sequence[Record]) -> int:
        """Write ``records`` as one frame; return the bytes it took on disk (0 for no records)."""
        n = len(records)
        if n == 0:
            return 0
        with paused_gc():  # encoding makes a list per record
            payload = encode_batch(records)  # type: ignore[arg-type]
        times = [r.recv_ns for r in records]
        return self._append_payload(payload, n, min(times), max(times))

    def append_encoded(self, records: Sequence[bytes], min_ns: int, max_ns: int) -> int:
        """Write records already in their wire form (each one msgpack array, as
        ``encode_record`` makes it, e.g. received from the bus) as one frame, without decoding
        them; ``min_ns``/``max_ns`` are their smallest and largest ``recv_ns``. The frame is
        the one :meth:`append` writes for the same records."""
        n = len(records)
        if n == 0:
            return 0
        payload = _array_header(n) + b"".join(records)
        return self._append_payload(payload, n, min_ns, max_ns)

    def _append_payload(self, payload: bytes, n: int, mn: int, mx: int) -> int:
        flags = 0
        data = payload
        if self._cctx is not None:
            packed = self._cctx.compress(payload)
            if len(packed) < len(payload):
                data = packed
                flags = FLAG_ZSTD
        head = FRAME_HEAD.pack(FRAME_MAGIC, len(data), n, len(payload), mn, mx, flags)
        header = head + FRAME_CRC.pack(zlib.crc32(data, zlib.crc32(head)))
        size = len(header) + len(data)
        with self._lock:
            self._check_usable()
            try:
                if self._segment_frames and self._offset + size > self.segment_size:
                    self._rotate()
                self._write_frame(header, data, size)
                if self.fsync_policy == "always":
                    os.fdatasync(self._fd)
            except OSError as exc:
                self._fail_write(exc)
            self._note_frame(size, n, mn, mx, len(payload))
            if self.fsync_policy == "always":
                self.records_synced = self.records_written
        self.last_payload = payload
        return size

    def _write_frame(self, header: bytes, data: bytes, size: int) -> None:
        written = os.writev(self._fd, (header, data))
        if written != size:  # short write (e.g. the disk filled up): finish it or fail
            rest = (header + data)[written:]
            while rest:
                k = os.write(self._fd, rest)
                if k == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                rest = rest[k:]

    def _note_frame(self, size: int, n: int, mn: int, mx: int, raw: int) -> None:
        g = self._group
        if g is None:
            self._group = IndexEntry(self._offset, size, mn, mx, n, 1)
        else:
            g.span += size
            g.min_ns = min(g.min_ns, mn)
            g.max_ns = max(g.max_ns, mx)
            g.records += n
            g.frames += 1
        self._offset += size
        self._segment_frames += 1
        self.frames_written += 1
        self.records_written += n
        self.bytes_written += size
        self.raw_bytes_written += raw
        if self.first_ns is None or mn < self.first_ns:
            self.first_ns = mn
        if self.last_ns is None or mx > self.last_ns:
            self.last_ns = mx
        if self._group is not None and self._group.span >= self.index_interval:
            try:
                self._flush_index_group()
            except OSError as exc:  # the index is rebuildable; losing it costs speed only
                log.warning("wal_index_write_failed", path=str(self.segment_path), error=str(exc))
                self._group = None

    def _fail_write(self, exc: OSError) -> None:
        """Cut the segment back to its last complete frame so it stays readable, then raise."""
        path = self.segment_path
        if self._fd < 0:  # starting the next segment failed: nothing half-written to cut back
            self._failure = f"cannot start segment {path.name}: {exc.strerror}"
            raise WalError(
                f"cannot start WAL segment {path}: {exc.strerror}; every earlier segment is "
                "intact. Free space or fix the disk, then open a new writer"
            ) from exc
        try:
            os.ftruncate(self._fd, self._offset)
        except OSError as trunc_exc:
            self._failure = f"{exc.strerror}, and truncating back failed: {trunc_exc.strerror}"
        what = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror
        raise WalError(
            f"cannot write WAL frame to {path} at byte {self._offset}: {what}; "
            "the segment is intact up to that byte. Free space or fix the disk, then retry"
        ) from exc

    def _check_usable(self) -> None:
        if self._closed:
            raise WalError(f"WAL writer for {self.directory} is closed")
        if self._failure is not None:
            raise WalError(
                f"WAL writer for {self.directory} failed earlier ({self._failure}); "
                "close it and open a new writer (it recovers the directory)"
            )

    def active_segment(self) -> tuple[Path, int, list[IndexEntry]]:
        """The segment being written, its size and its index entries (those in its .idx file and
        the one not written there yet), read under the append lock so that they agree: metadata
        taken on another thread than the appends (a snapshot round's) counts each frame once."""
        with self._lock:
            path = self.segment_path
            entries = load_index(path, self._offset)
            g = self._group
            if g is not None:
                entries.append(IndexEntry(*(getattr(g, f) for f in g.__slots__)))
            return path, self._offset, entries

    # ------------------------------------------------------------ durability

    def sync(self) -> None:
        """Flush and fdatasync now; afterwards every record appended so far is durable."""
        with self._lock:
            self._check_usable()
            target = self.records_written
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                self._failure = f"fsync failed: {exc.strerror}"
                raise WalError(f"cannot fsync {self.segment_path}: {exc.strerror}") from exc
            self.records_synced = target

    def _sync_loop(self) -> None:
        interval = self.fsync_interval_ms / 1000
        while not self._stop.wait(interval):
            with self._lock:
                if self._closed or self._failure or self.records_synced == self.records_written:
                    continue
                target = self.records_written
                fd = os.dup(self._fd)  # fsync outside the lock; rotation may close the original
            try:
                os.fdatasync(fd)
            except OSError as exc:
                self._failure = f"background fsync failed: {exc.strerror}"
                log.error("wal_fsync_failed", path=str(self.segment_path), error=exc.strerror)
            else:
                with self._lock:
                    self.records_synced = max(self.records_synced, target)
            finally:
                os.close(fd)

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Finish the index, fsync (unless the policy is ``never``) and close. Idempotent."""
        if self._syncer is not None:
            self._stop.set()
            self._syncer.join()
            self._syncer = None
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._fd >= 0:
                try:
                    self._close_segment()
                except OSError as exc:
                    raise WalError(f"cannot close {self.segment_path}: {exc.strerror}") from exc

    def __enter__(self) -> WalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a writer dropped without close() must not leak its fds
        if getattr(self, "_fd", -1) >= 0 and not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()


__all__ = ["FSYNC_POLICIES", "RecoveryReport", "WalOptions", "WalWriter", "recover"]
