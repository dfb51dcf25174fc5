"""The public chain function: an option chain at an instant or on a clock grid, written in one
format and optionally drawn. One copy for the CLI, the Python API and the server to come."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

from shriven.errors import ReplayError
from shriven.files import atomic_output
from shriven.replay import export
from shriven.replay.chain import (
    DEFAULT_LOOKBACK_NS,
    DEFAULT_RATE,
    ChainSnapshot,
    chain_snapshots,
    open_chain,
)
from shriven.replay.chain_out import write_chain
from shriven.replay.chain_plot import PlotInfo, plot_chain

__all__ = ["MAX_INSTANTS", "ChainResult", "chain_instants", "parse_every", "replay_chain"]

MAX_INSTANTS = 1_000_000
_UNITS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_every(text: str) -> int:
    """``500ms``, ``1s``, ``1m``, ``1h`` (a bare number is seconds) -> nanoseconds."""
    t = text.strip().lower()
    for unit in ("ms", "s", "m", "h"):
        if t.endswith(unit):
            number, scale = t[: -len(unit)], _UNITS[unit]
            break
    else:
        number, scale = t, _UNITS["s"]
    try:
        value = float(number)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ReplayError(f"bad interval {text!r}: use e.g. 500ms, 1s, 1m or 5m")
    return int(value * scale)


Sink = Path | IO[str] | IO[bytes]


@dataclass(slots=True)
class ChainResult:
    legs: int
    snapshots: int
    plot: PlotInfo | None = None
    notes: list[str] = field(default_factory=list)


def chain_instants(
    at_ns: int | None, start_ns: int | None, end_ns: int | None, every_ns: int | None
) -> list[int]:
    """``[at_ns]``, or every ``every_ns`` from ``start_ns`` up to (not including) ``end_ns``."""
    series = start_ns is not None or end_ns is not None or every_ns is not None
    if at_ns is not None and series:
        raise ReplayError("give either --at TIME or --start, --end and --every, not both")
    if at_ns is not None:
        return [at_ns]
    if start_ns is None or end_ns is None or every_ns is None:
        raise ReplayError("give --at TIME, or all of --start, --end and --every for a series")
    if every_ns <= 0:
        raise ReplayError("--every must be a positive interval such as 1s, 1m or 5m")
    if end_ns <= start_ns:
        raise ReplayError("the range is empty: --end must be after --start")
    count = (end_ns - start_ns + every_ns - 1) // every_ns
    if count > MAX_INSTANTS:
        raise ReplayError(
            f"--every gives {count:,} instants in the range (at most {MAX_INSTANTS:,}): "
            "use a longer interval or a shorter range"
        )
    return list(range(start_ns, end_ns, every_ns))


def replay_chain(
    data_dir: Path,
    underlying: str,
    sink: Sink,
    zone: ZoneInfo,
    *,
    at_ns: int | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    every_ns: int | None = None,
    expiry: str = "current",
    rate: float = DEFAULT_RATE,
    lookback_ns: int = DEFAULT_LOOKBACK_NS,
    fmt: str = "table",
    plot: Path | None = None,
    cache_dir: Path | None = None,
    skip_damaged: bool = False,
    force: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> ChainResult:
    """Write the chain of ``underlying`` (``NIFTY 50``) at ``at_ns``, or at every ``every_ns``
    of ``[start_ns, end_ns)``, to ``sink`` in ``fmt`` (table, jsonl, csv, parquet); with
    ``plot`` also draw the smile and term structure of the (last) instant to that PNG.
    ``expiry``: current, next, all or a date. Raises ReplayError (or NotRecordedError)."""
    fmt = fmt.lower()
    if fmt not in export.FORMATS:
        raise ReplayError(f"unknown --format {fmt!r}: use one of {', '.join(export.FORMATS)}")
    out = sink if isinstance(sink, Path) else None
    if fmt == "parquet" and out is None and isinstance(sink, io.TextIOBase):
        raise ReplayError("--format parquet writes a file: give --out FILE.parquet")
    if plot is not None and plot.suffix.lower() != ".png":
        raise ReplayError(f"--plot {plot}: give a file name ending in .png")
    if not -1.0 < rate < 1.0:
        raise ReplayError(f"bad rate {rate!r}: give a yearly decimal such as 0.065 for 6.5%")
    instants = chain_instants(at_ns, start_ns, end_ns, every_ns)
    atomic = export.check_out(out, data_dir, force) if out is not None else False
    if plot is not None:
        export.check_out(plot, data_dir, force)
    run = open_chain(
        data_dir,
        underlying,
        rate=rate,
        lookback_ns=lookback_ns,
        expiry=expiry,
        cache_dir=cache_dir,
        skip_damaged=skip_damaged,
    )
    last: list[ChainSnapshot] = []
    snapshots = _remember(chain_snapshots(run, instants, zone), last)
    # The first snapshot decides whether the request can be served (expiry recorded, instant in
    # the store): taken before anything is written, so a bad request creates no file.
    first = next(snapshots, None)
    legs = _write(_prepend(first, snapshots), fmt, sink, zone, run.selected, atomic)
    result = ChainResult(legs, len(instants), notes=run.notes)
    if plot is not None and last:
        result.plot = plot_chain(last[-1], plot, zone)
    for line in run.notes:
        if on_note is not None:
            on_note(line)
    return result


def _prepend(first: ChainSnapshot | None, rest: Iterator[ChainSnapshot]) -> Iterator[ChainSnapshot]:
    if first is not None:
        yield first
    yield from rest


def _remember(it: Iterator[ChainSnapshot], last: list[ChainSnapshot]) -> Iterator[ChainSnapshot]:
    for s in it:
        last[:] = [s]
        yield s


def _write(
    snapshots: Iterator[ChainSnapshot],
    fmt: str,
    sink: Sink,
    zone: ZoneInfo,
    selected: list,  # type: ignore[type-arg]
    atomic: bool,
) -> int:
    if isinstance(sink, io.TextIOBase):
        n = write_chain(snapshots, fmt, sink, zone, selected)
        sink.flush()
        return n
    if not isinstance(sink, Path):
        return _binary(snapshots, fmt, sink, zone, selected)  # type: ignore[arg-type]
    with atomic_output(sink, 0o644) if atomic else open(sink, "wb") as f:
        return _binary(snapshots, fmt, f, zone, selected)


def _binary(
    snapshots: Iterator[ChainSnapshot],
    fmt: str,
    f: IO[bytes],
    zone: ZoneInfo,
    selected: list,  # type: ignore[type-arg]
) -> int:
    if fmt == "parquet":
        return write_chain(snapshots, fmt, f, zone, selected)
    with export.text_view(f) as text:
        return write_chain(snapshots, fmt, text, zone, selected)
