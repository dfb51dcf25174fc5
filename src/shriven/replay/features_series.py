"""Book feature series for one instrument on a clock grid, for research and models: mid, spread,
microprice, top-1 and top-N imbalance, order-flow imbalance, log return and realised volatility
(shriven.analytics.features), from the books replay rebuilds (replay/reconstruct.py)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final
from zoneinfo import ZoneInfo

from shriven.analytics import FeatureRow, FeatureSampler, Top
from shriven.errors import NotRecordedError, ReplayError
from shriven.files import atomic_output
from shriven.replay import export
from shriven.replay.books import Rebuilder
from shriven.replay.instruments import instruments_for
from shriven.replay.reconstruct import book_states, resolve_book_key
from shriven.replay.store import StoreReader
from shriven.replay.times import format_ns
from shriven.wal.gc import scan_gc

__all__ = ["FEATURE_COLUMNS", "WARMUP_NS", "FeaturesResult", "replay_features"]

# Changes read before --start, so the first row has a book even in a store without snapshots
# near it (a Kite book is its latest full tick).
WARMUP_NS: Final = 300 * 1_000_000_000

FEATURE_COLUMNS: Final = ("time", *FeatureRow._fields[1:])


@dataclass(slots=True)
class FeaturesResult:
    rows: int
    key: str
    notes: list[str] = field(default_factory=list)


def _top(book, depth: int) -> Top:  # type: ignore[no-untyped-def]
    bids, asks = book.top(depth)
    bid, bid_qty = bids[0] if bids else (None, 0.0)
    ask, ask_qty = asks[0] if asks else (None, 0.0)
    return Top(bid, bid_qty, ask, ask_qty, sum(q for _p, q in bids), sum(q for _p, q in asks))


def replay_features(
    data_dir: Path,
    symbol: str,
    sink: Path | IO[str],
    zone: ZoneInfo,
    *,
    start_ns: int,
    end_ns: int,
    every_ns: int,
    depth: int = 5,
    window: int = 60,
    fmt: str = "parquet",
    cache_dir: Path | None = None,
    skip_damaged: bool = False,
    force: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> FeaturesResult:
    """One row of book features of ``symbol`` every ``every_ns`` in ``[start_ns, end_ns)``;
    ``depth`` levels for the top-N imbalance, ``window`` returns for the realised volatility."""
    fmt = fmt.lower()
    if fmt not in ("jsonl", "csv", "parquet"):
        raise ReplayError(f"unknown --format {fmt!r}: use parquet, jsonl or csv")
    if end_ns <= start_ns:
        raise ReplayError("the range is empty: --end must be after --start")
    if every_ns <= 0 or (end_ns - start_ns) // every_ns > 10_000_000:
        raise ReplayError("--every must be positive and give at most 10,000,000 rows")
    if depth < 1 or window < 1:
        raise ReplayError("--depth and --window must be at least 1")
    out = sink if isinstance(sink, Path) else None
    if fmt == "parquet" and out is None:
        raise ReplayError("--format parquet writes a file: give --out FILE.parquet")
    atomic = export.check_out(out, data_dir, force) if out is not None else False
    text = symbol.strip()
    instruments = None
    if not text.isdigit() and not text.startswith(("kite:", "binance:")):
        instruments, _note = instruments_for(cache_dir, data_dir)
    key = resolve_book_key(text, instruments)
    store = StoreReader(data_dir, strict=not skip_damaged)
    sampler = FeatureSampler(start_ns, every_ns, window)
    seen = [0]

    def rows() -> Iterator[FeatureRow]:
        reb = Rebuilder()
        with scan_gc():
            for state in book_states(store, key, start_ns - WARMUP_NS, end_ns, reb):
                seen[0] += 1
                yield from sampler.update(state.recv_ns, _top(state.book, depth))
        if seen[0] == 0 and reb.book(key) is None:
            raise NotRecordedError(
                f"no book of {key} in [{format_ns(start_ns, zone)}, {format_ns(end_ns, zone)}) "
                f"in {data_dir}: check --symbol and the range"
            )
        book = reb.book(key)
        if book is not None and seen[0] == 0:
            sampler.update(start_ns, _top(book, depth))
        yield from sampler.until(end_ns - 1)

    it = rows()
    first = next(it, None)  # a symbol with no book raises before a file is created
    stream = _chain(first, it)
    if out is None:
        n = _write(stream, fmt, sink, zone)  # type: ignore[arg-type]
    else:
        with atomic_output(out, 0o644) if atomic else open(out, "wb") as f:
            if fmt == "parquet":
                n = _parquet(stream, f, zone)
            else:
                with export.text_view(f) as t:
                    n = _write(stream, fmt, t, zone)
    result = FeaturesResult(n, key)
    if line := store.skipped():
        result.notes.append(line)
    for line in result.notes:
        if on_note is not None:
            on_note(line)
    return result


def _chain(first: FeatureRow | None, rest: Iterator[FeatureRow]) -> Iterator[FeatureRow]:
    if first is not None:
        yield first
    yield from rest


def _dicts(rows: Iterator[FeatureRow], zone: ZoneInfo) -> Iterator[dict[str, object]]:
    for r in rows:
        d = r._asdict()
        d["time"] = format_ns(d.pop("at_ns"), zone)
        yield {c: d[c] for c in FEATURE_COLUMNS}


def _write(rows: Iterator[FeatureRow], fmt: str, out: IO[str], zone: ZoneInfo) -> int:
    n = 0
    if fmt == "jsonl":
        for d in _dicts(rows, zone):
            out.write(json.dumps(d, separators=(",", ":")) + "\n")
            n += 1
    else:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(FEATURE_COLUMNS)
        for d in _dicts(rows, zone):
            w.writerow(["" if d[c] is None else d[c] for c in FEATURE_COLUMNS])
            n += 1
    out.flush()
    return n


def _parquet(rows: Iterator[FeatureRow], f: IO[bytes], zone: ZoneInfo) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ReplayError(
            "parquet output needs pyarrow: pip install 'shriven[parquet]', or use --format jsonl"
        ) from None
    fields = [("time", pa.timestamp("ns", tz=zone.key))]
    fields += [(c, pa.int64() if c == "updates" else pa.float64()) for c in FEATURE_COLUMNS[1:]]
    schema = pa.schema(fields)
    cols: list[list[object]] = [[] for _ in FEATURE_COLUMNS]
    for r in rows:
        for col, v in zip(cols, r, strict=True):
            col.append(v)
    arrays = [pa.array(c, type=fl.type) for c, fl in zip(cols, schema, strict=True)]
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), f, compression="zstd")
    return len(cols[0])
