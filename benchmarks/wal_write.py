"""WAL write throughput, compression off and on, against a JSON-lines writer of the same records.

Targets: >= 50 MB/s of record data and >= 300k records/s. Records: Kite full ticks with 5+5 depth,
Binance depth diffs with a few levels, trades (shriven.sim.samples). Frames of 1,000 records, the
default fsync policy (interval, 200 ms). Usage: python benchmarks/wal_write.py [records]
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from _cli import parser
from _walbench import best_of, make_records, write_jsonl
from shriven.wal import WalWriter

BATCH = 1_000
RUNS = 3


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("records", nargs="?", type=int, default=300_000, help="records")
    n = ap.parse_args().records
    records = make_records(n)
    batches = [records[i : i + BATCH] for i in range(0, n, BATCH)]
    root = Path(tempfile.mkdtemp(prefix="shriven-bench-"))
    results: dict[str, tuple[float, int, int]] = {}
    try:
        for compression in (False, True):
            name = f"wal compression={'on' if compression else 'off'}"
            counts: list[WalWriter] = []

            def run(compression: bool = compression, counts: list[WalWriter] = counts) -> None:
                d = Path(tempfile.mkdtemp(dir=root))
                with WalWriter(d, compression=compression) as w:
                    for b in batches:
                        w.append(b)
                counts.append(w)
                shutil.rmtree(d)

            secs = best_of(RUNS, run)
            results[name] = (secs, counts[-1].raw_bytes_written, counts[-1].bytes_written)
        sizes: list[int] = []
        secs = best_of(RUNS, lambda: sizes.append(write_jsonl(root / "peer.jsonl", batches)))
        results["jsonl"] = (secs, sizes[-1], sizes[-1])
    finally:
        shutil.rmtree(root)

    peer_secs = results["jsonl"][0]
    print(f"{n} records in frames of {BATCH}; best of {RUNS} runs")
    print(
        f"{'writer':<22}{'records/s':>12}{'data MB/s':>11}{'disk MB/s':>11}{'disk MB':>9}  vs jsonl"
    )
    for name, (secs, data, disk) in results.items():
        print(
            f"{name:<22}{n / secs:>12,.0f}{data / secs / 1e6:>11.1f}{disk / secs / 1e6:>11.1f}"
            f"{disk / 1e6:>9.1f}  {peer_secs / secs:.2f}x"
        )
    print(
        "data MB/s: msgpack record bytes (JSON text for jsonl) per second; targets 50 MB/s, 300k/s"
    )


if __name__ == "__main__":
    main()
