"""Replay to Parquet: ``replay_range(fmt="parquet")`` of a whole store (the column-at-a-time
path, replay.columnar_export), beside the record path it replaced (store.records ->
RefusedFilter -> export.write_parquet, the same bytes), the same replay to JSON lines, and
``pyarrow.parquet.write_table`` of the very table the replay writes (the writer alone: no replay
to Parquet can be faster than its writer).

Target (issue 14): replay to Parquet >= 1M records/s. The store holds the sim sample records
(Kite full ticks, Binance diffs and trades) in zstd frames of 1,000. CPU time
(time.process_time), best of RUNS (the record path: one run). Usage:
python benchmarks/replay_parquet.py [records]
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from _cli import parser
from _walbench import cpu_best, make_records
from shriven.replay import export, load_zone, replay_range
from shriven.replay.ordering import DEFAULT_WINDOW_NS
from shriven.replay.select import RefusedFilter, Selection
from shriven.replay.store import StoreReader
from shriven.wal import StoreWriter, WalOptions

BATCH = 1_000
RUNS = 2


def cpu_secs(fn: Callable[[], object]) -> float:
    return cpu_best(fn, RUNS)[0]


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("records", nargs="?", type=int, default=100_000, help="records")
    n = ap.parse_args().records
    records = make_records(n)
    root = Path(tempfile.mkdtemp(prefix="shriven-parquet-bench-"))
    zone = load_zone("Asia/Kolkata")
    try:
        with StoreWriter(root, WalOptions(compression=True)) as w:
            for i in range(0, n, BATCH):
                w.append_ticks(records[i : i + BATCH])
        del records

        def replay(fmt: str) -> int:
            sink = io.BytesIO() if fmt == "parquet" else io.StringIO()
            return replay_range(root, sink, zone, fmt=fmt).records

        def record_path() -> bytes:
            store = StoreReader(root)
            records = RefusedFilter()(store.records(Selection(), None, None, DEFAULT_WINDOW_NS))
            out = io.BytesIO()
            export.write_parquet(records, out, zone)
            return out.getvalue()

        sink = io.BytesIO()
        assert replay_range(root, sink, zone, fmt="parquet").records == n
        parquet = cpu_secs(lambda: replay("parquet"))
        jsonl = cpu_secs(lambda: replay("jsonl"))
        old, old_bytes = cpu_best(record_path, 1)
        assert old_bytes == sink.getvalue(), "the two paths must write the same bytes"
        table = pq.read_table(io.BytesIO(sink.getvalue()))
        peer = cpu_secs(lambda: pq.write_table(table, io.BytesIO(), compression="zstd"))
    finally:
        shutil.rmtree(root)
    print(f"{n:,} records; CPU time, best of {RUNS}")
    print(f"replay to Parquet      {n / parquet:>12,.0f} records/s")
    print(
        f"record path (before)   {n / old:>12,.0f} records/s"
        f"  (replay to Parquet is {old / parquet:.1f}x faster; the same bytes)"
    )
    print(
        f"replay to JSON lines   {n / jsonl:>12,.0f} records/s"
        f"  (Parquet takes {parquet / jsonl:.2f}x its CPU)"
    )
    print(
        f"pyarrow write_table    {n / peer:>12,.0f} rows/s of the replay's own table "
        f"(the writer alone: {peer / parquet:.0%} of the replay's CPU)"
    )
    print("target: replay to Parquet >= 1M records/s")


if __name__ == "__main__":
    main()
