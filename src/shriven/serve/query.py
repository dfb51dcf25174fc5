"""The JSON query API over the store: ``/v1/records``, ``/v1/book``, ``/v1/instruments``,
``/v1/stats``. Records and books come from the public replay functions the CLI calls
(:func:`shriven.replay.replay_range`, :func:`shriven.replay.replay_book`); errors are one line
of JSON (``{"error": "..."}``) with 400 for a request that cannot be served as asked and 404 for
something the store does not hold.

``/v1/records`` streams: the replay runs on a thread writing into a pipe of a few 64 KiB chunks,
so memory stays bounded whatever the range, and a client that goes away stops the replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import threading
from datetime import date
from typing import Final

from aiohttp import web

from shriven.book import features
from shriven.errors import NotRecordedError, ReplayError, ShrivenError
from shriven.events import BookSnapshot
from shriven.replay import StoreReader, format_ns, parse_instant, replay_book, replay_range
from shriven.serve.core import Core, json_error
from shriven.universe.recorded import load_recorded
from shriven.wal.check import wal_stats
from shriven.wal.store import store_stream_counts

__all__ = ["book", "instruments", "records", "stats"]

_CHUNK: Final = 64 * 1024
_CHUNKS_AHEAD: Final = 8
_CONTENT_TYPES: Final = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}
_RECENT_NS: Final = 300 * 1_000_000_000  # /v1/instruments: books snapshotted in the last 5 min


def _status_of(exc: ShrivenError) -> int:
    return 404 if isinstance(exc, NotRecordedError) else 400


def _store(core: Core) -> web.Response | None:
    if core.data_dir is None:
        return json_error(404, "this server has no store")
    return None


class _Pipe(io.RawIOBase):
    """A write-only stream handing chunks to the event loop; a full pipe blocks the writer
    thread (bounded memory), a closed one raises EPIPE in it (the client left)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self.room = threading.Semaphore(_CHUNKS_AHEAD)
        self.gone = threading.Event()
        self.written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.written

    def write(self, data: bytes) -> int:  # type: ignore[override]
        while not self.room.acquire(timeout=0.5):
            if self.gone.is_set():
                break
        if self.gone.is_set():
            raise BrokenPipeError(errno.EPIPE, "the client went away")
        chunk = bytes(data)
        self.loop.call_soon_threadsafe(self.queue.put_nowait, chunk)
        self.written += len(chunk)
        return len(chunk)

    def end(self, item: BaseException | None) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


async def records(core: Core, request: web.Request) -> web.StreamResponse:
    core.stats.requests["records"] += 1
    if (missing := _store(core)) is not None:
        return missing
    q = request.query
    fmt = q.get("format", "jsonl").lower()
    if fmt not in _CONTENT_TYPES:
        return json_error(400, f"unknown format {fmt!r}: use one of {', '.join(_CONTENT_TYPES)}")
    symbols = [s.strip() for v in q.getall("symbol", []) for s in v.split(",") if s.strip()]
    kinds = [v for v in q.getall("type", [])]
    try:
        start_ns = parse_instant(q["start"], core.zone) if "start" in q else None
        end_ns = parse_instant(q["end"], core.zone) if "end" in q else None
    except ReplayError as exc:
        return json_error(400, str(exc))
    loop = asyncio.get_running_loop()
    pipe = _Pipe(loop)
    sink = io.BufferedWriter(pipe, buffer_size=_CHUNK)

    def run() -> None:
        item: BaseException | None = None
        try:
            replay_range(
                core.data_dir,  # type: ignore[arg-type]
                sink,
                core.zone,
                start_ns=start_ns,
                end_ns=end_ns,
                symbols=symbols,
                venue=q.get("venue") or None,
                kinds=kinds,
                fmt=fmt,
                cache_dir=core.options.cache_dir,
            )
            sink.flush()
        except ShrivenError as exc:
            item = exc
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                item = ReplayError(f"cannot read the store: {exc}")
        except Exception as exc:  # a bug some stored bytes met: say so in one line
            item = ReplayError(f"replay failed: {type(exc).__name__}: {exc}")
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server stopped
            pipe.end(item)

    thread = threading.Thread(target=run, name="shriven-serve-records", daemon=True)
    thread.start()
    response: web.StreamResponse | None = None
    try:
        while True:
            item = await pipe.queue.get()
            if isinstance(item, BaseException):
                if response is None:
                    status = _status_of(item) if isinstance(item, ShrivenError) else 500
                    return json_error(status, str(item))
                break  # headers are gone: the stream just ends short, its chunked end missing
            if response is None:
                response = web.StreamResponse(headers={"Content-Type": _CONTENT_TYPES[fmt]})
                await response.prepare(request)
            if item is None:
                break
            pipe.room.release()
            await response.write(item)
        await response.write_eof()
        return response
    finally:
        pipe.gone.set()
        pipe.room.release()


async def book(core: Core, request: web.Request) -> web.Response:
    core.stats.requests["book"] += 1
    if (missing := _store(core)) is not None:
        return missing
    q = request.query
    symbol = q.get("symbol", "").strip()
    if not symbol or "at" not in q:
        return json_error(400, "give symbol= and at= (ISO 8601), e.g. ?symbol=BTCUSDT&at=...")
    try:
        depth = int(q.get("depth", "10"))
        if not 1 <= depth <= 5000:
            raise ValueError
    except ValueError:
        return json_error(400, f"bad depth {q.get('depth')!r}: use a whole number 1 to 5000")
    try:
        at_ns = parse_instant(q["at"], core.zone)
        result = await asyncio.to_thread(
            replay_book,
            core.data_dir,  # type: ignore[arg-type]
            symbol,
            at_ns,
            core.zone,
            cache_dir=core.options.cache_dir,
        )
    except ShrivenError as exc:
        return json_error(_status_of(exc), str(exc))
    b = result.book
    bids, asks = b.book.top(depth)
    snap = b.snapshot
    return web.json_response(
        {
            "key": result.key,
            "at": format_ns(at_ns, core.zone),
            "at_ns": at_ns,
            "valid": b.valid,
            "update_id": b.book.update_id,
            "bids": bids,
            "asks": asks,
            "features": features(b.book)._asdict(),
            "snapshot_ns": snap.recv_ns if snap is not None else None,
            "changes": b.changes,
            "notes": result.notes,
        }
    )


def _instruments(core: Core) -> dict[str, object]:
    assert core.data_dir is not None
    kite = [
        {k: (v.isoformat() if isinstance(v, date) else v) for k, v in row._asdict().items()}
        for row in load_recorded(core.data_dir)
    ]
    books: set[str] = set()
    st = wal_stats("lob", core.data_dir / "lob")
    if st.last_ns is not None:
        for r in StoreReader(core.data_dir).snapshots(st.last_ns - _RECENT_NS, None):
            if type(r) is BookSnapshot:
                books.add(f"{r.venue}:{r.instrument}")
    if core.live is not None:
        books |= core.live.symbols
    return {"kite": kite, "books": sorted(books)}


async def instruments(core: Core, request: web.Request) -> web.Response:
    core.stats.requests["instruments"] += 1
    if (missing := _store(core)) is not None:
        return missing
    try:
        doc = await asyncio.to_thread(_instruments, core)
    except ShrivenError as exc:
        return json_error(_status_of(exc), str(exc))
    return web.json_response(doc)


def _wal_stats(core: Core) -> dict[str, object]:
    assert core.data_dir is not None
    out: dict[str, object] = {}
    counts = store_stream_counts(core.data_dir)
    for name in ("ticks", "lob"):
        st = wal_stats(name, core.data_dir / name)
        out[name] = {
            "segments": st.segments,
            "frames": st.frames,
            "records": st.records,
            "bytes": st.bytes,
            "unindexed_bytes": st.unindexed_bytes,
            "first": format_ns(st.first_ns, core.zone) if st.first_ns is not None else None,
            "last": format_ns(st.last_ns, core.zone) if st.last_ns is not None else None,
            "first_ns": st.first_ns,
            "last_ns": st.last_ns,
            "streams": {s: n for s, (n, _f, _l) in sorted(counts.get(name, {}).items())},
        }
    return out


async def stats(core: Core, request: web.Request) -> web.Response:
    core.stats.requests["stats"] += 1
    s = core.stats
    doc: dict[str, object] = {
        "server": {
            "live": core.live is not None,
            "clients": dict(s.clients),
            "messages_sent": dict(s.messages),
            "bytes_sent": dict(s.bytes),
            "dropped_bytes": s.dropped_bytes,
            "disconnects": {f"{p}:{r}": n for (p, r), n in sorted(s.disconnects.items())},
        }
    }
    if core.data_dir is not None:
        doc["store"] = await asyncio.to_thread(_wal_stats, core)
    return web.json_response(doc)
