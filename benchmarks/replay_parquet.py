"""Replay to Parquet: ``replay_range(fmt="parquet")`` of a whole store, beside the same replay
to JSON lines (``fmt="jsonl"``) and ``pyarrow.parquet.write_table`` of an Arrow table of the same
number of rows (the peer: pyarrow's own columnar writer, fed columns already built).

Target (issue 14): replay to Parquet >= 1M records/s. The store holds the sim sample records
(Kite full ticks, Binance diffs and trades) in zstd frames of 1,000. CPU time
(time.process_time), best of RUNS. Usage: python benchmarks/replay_parquet.py [records]
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from _cli import parser
from _walbench import cpu_best, make_records
from shriven.replay import load_zone, replay_range
from shriven.wal import StoreWriter, WalOptions

BATCH = 1_000
RUNS = 2


def cpu_secs(fn: Callable[[], object]) -> float:
    return cpu_best(fn, RUNS)[0]


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("records", nargs="?", type=int, default=200_000, help="records")
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

        assert replay("parquet") == n
        parquet = cpu_secs(lambda: replay("parquet"))
        jsonl = cpu_secs(lambda: replay("jsonl"))
        table = pa.table(
            {
                "time": pa.array(range(n), pa.int64()),
                "instrument": pa.array([f"binance:BTCUSDT{i % 3}" for i in range(n)]),
                "price": pa.array([i / 100 for i in range(n)], pa.float64()),
                "quantity": pa.array([i % 97 / 10 for i in range(n)], pa.float64()),
            }
        )
        peer = cpu_secs(lambda: pq.write_table(table, io.BytesIO(), compression="zstd"))
    finally:
        shutil.rmtree(root)
    print(f"{n:,} records; CPU time, best of {RUNS}")
    print(f"replay to Parquet      {n / parquet:>12,.0f} records/s")
    print(
        f"replay to JSON lines   {n / jsonl:>12,.0f} records/s"
        f"  (Parquet takes {parquet / jsonl:.2f}x its CPU)"
    )
    print(
        f"pyarrow write_table    {n / peer:>12,.0f} rows/s of 4 ready columns "
        f"(the writer alone; replay to Parquet is {peer / parquet:.3f}x it)"
    )
    print("target: replay to Parquet >= 1M records/s")


if __name__ == "__main__":
    main()
