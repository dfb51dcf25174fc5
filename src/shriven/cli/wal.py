"""`shriven wal ...`: inspect and verify WAL stores."""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import typer

from shriven.cli.app import app
from shriven.wal.check import (
    STORE_STREAMS,
    SegmentCheck,
    check_wal,
    total_bytes,
    wal_directories,
    wal_stats,
)
from shriven.wal.store import store_stream_counts

wal_app = typer.Typer(help="Inspect and verify WAL stores.", no_args_is_help=True)
app.add_typer(wal_app, name="wal")

_PROGRESS_FROM_BYTES = 64 * 1024 * 1024
_DAMAGE_SHOWN = 20


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    stamp = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ns % 1_000_000_000:09d}Z"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError


def _compression(s: SegmentCheck) -> str:
    """How much zstd saved on the payloads (headers excluded), and how many frames it was not
    used for because compressing would have made them larger (typically one-record frames)."""
    if s.codec != "zstd" or not s.stored_bytes:
        return ""
    n = s.uncompressed_frames
    raw = f"; {n} frame{'s' if n > 1 else ''} stored uncompressed" if n else ""
    return f" ({s.raw_bytes / s.stored_bytes:.1f}x{raw})"


@wal_app.command("check")
def check(
    path: Path = typer.Argument(
        ..., help="A store directory (ticks/, lob/) or one WAL directory.", metavar="PATH"
    ),
) -> None:
    """Verify every frame of every segment: checksum, decompression, record decoding.

    Prints records, bytes, time range and codec per segment and every damaged frame. A torn tail
    (the newest segment ends inside a frame, as after a crash) is reported but is not corruption:
    the next writer truncates it. Exit status 1 when any segment is corrupt."""
    wals = wal_directories(path)
    total = total_bytes(path)
    corrupt = False
    bar = (
        typer.progressbar(length=total, label="checking", file=sys.stderr)
        if total >= _PROGRESS_FROM_BYTES
        else contextlib.nullcontext()
    )
    with bar as progress:
        advance = progress.update if progress is not None else None
        reports = [(name, check_wal(directory, advance)) for name, directory in wals]
    for (name, segments), (_name, directory) in zip(reports, wals, strict=True):
        records = sum(s.records for s in segments)
        size = sum(s.bytes for s in segments)
        firsts = [s.first_ns for s in segments if s.first_ns is not None]
        lasts = [s.last_ns for s in segments if s.last_ns is not None]
        typer.echo(
            f"{name}: {len(segments)} segments, {records} records, {_size(size)}, "
            f"{_when(min(firsts, default=None))} .. {_when(max(lasts, default=None))}"
        )
        for s in segments:
            if s.corrupt:
                state = f"CORRUPT: {s.corrupt_frames} damaged frames, {s.corrupt_bytes} bytes"
                corrupt = True
            elif s.torn_tail_bytes:
                state = (
                    f"TRUNCATED: torn tail of {s.torn_tail_bytes} bytes (a writer is still "
                    "writing it, or crashed: the next writer to open the WAL drops it)"
                )
            else:
                state = "ok"
            typer.echo(
                f"  {s.path.name}  codec={s.codec}{_compression(s)}  frames={s.frames}  "
                f"records={s.records}  bytes={s.bytes}  "
                f"{_when(s.first_ns)} .. {_when(s.last_ns)}  {state}"
            )
            for offset, reason in s.damage[:_DAMAGE_SHOWN]:
                typer.echo(f"    at byte {offset}: {reason}")
            if len(s.damage) > _DAMAGE_SHOWN:
                typer.echo(f"    ... and {len(s.damage) - _DAMAGE_SHOWN} more")
            if not s.index_complete and not s.corrupt:
                typer.echo(
                    "    index does not cover the whole segment (rebuilt when a writer next opens "
                    "the WAL)"
                )
        for aside in sorted(directory.glob("segment_*.wal.damaged")):
            typer.echo(
                f"  {aside.name}  set aside by recovery ({aside.stat().st_size} bytes, no intact "
                "frame); not read"
            )
    typer.echo("result: CORRUPT" if corrupt else "result: ok")
    if corrupt:
        raise typer.Exit(1)


@wal_app.command("stats")
def stats(
    path: Path = typer.Argument(
        ..., help="A store directory (ticks/, lob/) or one WAL directory.", metavar="PATH"
    ),
) -> None:
    """Summarise a store from its segment indexes (fast; does not verify checksums), with the
    records per stream (kite, binance, system) that the store's metadata.json counted."""
    meta = path / "metadata.json"
    if not meta.is_file() and path.name in STORE_STREAMS:  # one WAL of a store: its parent's
        meta = path.parent / "metadata.json"
    described = _read_metadata(meta)
    # metadata.json's totals are stale once front segments are deleted: recount what is on disk
    recounted = store_stream_counts(meta.parent) if meta.is_file() else {}
    for name, directory in wal_directories(path):
        st = wal_stats(name, directory)
        span_s = (
            (st.last_ns - st.first_ns) / 1e9
            if st.first_ns is not None and st.last_ns is not None
            else 0.0
        )
        rate = f"{st.records / span_s:.0f} records/s" if span_s > 0 else "-"
        typer.echo(f"{name}:")
        typer.echo(f"  directory   {directory}")
        typer.echo(f"  segments    {st.segments}")
        typer.echo(f"  codec       {', '.join(sorted(st.codecs)) or '-'}")
        typer.echo(f"  frames      {st.frames}")
        typer.echo(f"  records     {st.records}")
        typer.echo(f"  bytes       {st.bytes} ({_size(st.bytes)})")
        typer.echo(f"  first       {_when(st.first_ns)}")
        typer.echo(f"  last        {_when(st.last_ns)}")
        typer.echo(f"  span        {span_s:.3f} s, {rate}")
        if st.unindexed_bytes:
            typer.echo(
                f"  unindexed   {st.unindexed_bytes} bytes (a writer is active, it crashed, or an "
                "index is missing; not counted above; `shriven wal check` reads them)"
            )
        by_stream = recounted.get(name)
        if by_stream:
            typer.echo("  per stream  (from metadata.json, for the segments on disk)")
            for stream, (n, first, last) in sorted(by_stream.items()):
                typer.echo(f"    {stream:<9} {n:>12} records  {_when(first)} .. {_when(last)}")
    if meta.is_file():
        updated = described.get("", {}).get("updated_ns")
        typer.echo(f"metadata: {meta}" + (f" (updated {_when(updated)})" if updated else ""))


def _read_metadata(path: Path) -> dict[str, dict]:
    """WAL name -> its entry in the store's metadata.json, plus "" -> the top level; {} when the
    file is missing or unreadable (stats never depend on it)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        wals = {k: v for k, v in document["streams"].items() if isinstance(v, dict)}
        return {**wals, "": document}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
