"""`shriven wal ...`: inspect and verify WAL stores."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import typer

from shriven.cli.app import app, settings
from shriven.cli.tree import WalGroup
from shriven.replay import format_ns, load_zone, zone_label
from shriven.wal.check import (
    STORE_STREAMS,
    SegmentCheck,
    check_wal,
    total_bytes,
    wal_directories,
    wal_stats,
)
from shriven.wal.store import store_stream_counts

wal_app = typer.Typer(help="Inspect and verify WAL stores.", no_args_is_help=True, cls=WalGroup)
app.add_typer(wal_app, name="wal")

_PROGRESS_FROM_BYTES = 64 * 1024 * 1024
_DAMAGE_SHOWN = 20


_TZ_HELP = "Zone for the times shown (default: SHRIVEN_MARKET_TZ, as replay)."


def _zone(tz: str | None) -> ZoneInfo:
    return load_zone(tz or settings().market_tz)


def _when(ns: int | None, zone: ZoneInfo) -> str:
    return "-" if ns is None else format_ns(ns, zone)


def _times_in(zone: ZoneInfo, ns: int | None) -> str:
    import time

    return f"times in {zone_label(zone, ns if ns is not None else time.time_ns())}"


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
    tz: str | None = typer.Option(None, "--tz", metavar="ZONE", help=_TZ_HELP),
) -> None:
    """Verify every frame of every segment: checksum, decompression, record decoding.

    Prints records, bytes, time range and codec per segment and every damaged frame. A torn tail
    (the newest segment ends inside a frame, as after a crash) is reported but is not corruption:
    the next writer truncates it. Exit status 1 when any segment is corrupt, 2 when PATH is not
    a store."""
    zone = _zone(tz)
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
    starts = [s.first_ns for _n, segs in reports for s in segs if s.first_ns is not None]
    typer.echo(f"# {_times_in(zone, min(starts, default=None))}")
    for (name, segments), (_name, directory) in zip(reports, wals, strict=True):
        records = sum(s.records for s in segments)
        size = sum(s.bytes for s in segments)
        firsts = [s.first_ns for s in segments if s.first_ns is not None]
        lasts = [s.last_ns for s in segments if s.last_ns is not None]
        typer.echo(
            f"{name}: {len(segments)} segments, {records} records, {_size(size)}, "
            f"{_when(min(firsts, default=None), zone)} .. {_when(max(lasts, default=None), zone)}"
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
                f"{_when(s.first_ns, zone)} .. {_when(s.last_ns, zone)}  {state}"
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
    tz: str | None = typer.Option(None, "--tz", metavar="ZONE", help=_TZ_HELP),
) -> None:
    """Summarise a store from its segment indexes (fast; does not verify checksums), with the
    records per stream (kite, binance, system) that the store's metadata.json counted."""
    meta = path / "metadata.json"
    if not meta.is_file() and path.name in STORE_STREAMS:  # one WAL of a store: its parent's
        meta = path.parent / "metadata.json"
    described = _read_metadata(meta)
    zone = _zone(tz)
    # metadata.json's totals are stale once front segments are deleted: recount what is on disk
    recounted = store_stream_counts(meta.parent) if meta.is_file() else {}
    found = [wal_stats(name, directory) for name, directory in wal_directories(path)]
    starts = [st.first_ns for st in found if st.first_ns is not None]
    typer.echo(f"# {_times_in(zone, min(starts, default=None))}")
    for st in found:
        name, directory = st.name, st.directory
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
        typer.echo(f"  first       {_when(st.first_ns, zone)}")
        typer.echo(f"  last        {_when(st.last_ns, zone)}")
        typer.echo(f"  span        {span_s:.3f} s, {rate}")
        if st.unindexed_bytes:
            typer.echo(
                f"  unindexed   {st.unindexed_bytes} bytes (a writer is active, it crashed, or an "
                "index is missing; not counted above; `shriven wal check` reads them)"
            )
        for segment, target in st.symlinks:
            typer.echo(
                f"  symlink     {segment} -> {target} (writers refuse to open this WAL; replace "
                "the link with the file itself; `shriven wal check` reports it as damage)"
            )
        by_stream = recounted.get(name)
        if by_stream:
            typer.echo("  per stream  (from metadata.json, for the segments on disk)")
            for stream, (n, first, last) in sorted(by_stream.items()):
                typer.echo(
                    f"    {stream:<9} {n:>12} records  {_when(first, zone)} .. {_when(last, zone)}"
                )
    if meta.is_file():
        updated = described.get("", {}).get("updated_ns")
        typer.echo(f"metadata: {meta}" + (f" (updated {_when(updated, zone)})" if updated else ""))


def _read_metadata(path: Path) -> dict[str, dict]:
    """WAL name -> its entry in the store's metadata.json, plus "" -> the top level; {} when the
    file is missing or unreadable (stats never depend on it)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        wals = {k: v for k, v in document["streams"].items() if isinstance(v, dict)}
        return {**wals, "": document}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
