"""`shriven wal archive`: compression ratio and MB/s on a realistic store, against gzip -9 (the
usual tarball archive) of the same segment files, measured in the same run.

The store is written the way the recorder writes it (StoreWriter, frames of 1,000 records, the
recorder's default zstd frame compression, 8 MiB segments) from shriven.sim.samples: Kite full
ticks with 5+5 depth, Binance depth diffs and trades. Timings are CPU time (time.process_time)
of compressing plus the verifying decompression, into a local directory (no network).
Both kinds of store are measured: frames zstd-compressed (the default, enable_compression=true)
and frames uncompressed. Usage: python benchmarks/archive_compression.py [records per store]
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import time
from pathlib import Path

from _cli import parser
from shriven.archive import LocalDestination, archive_segments
from shriven.archive.archiver import train_dictionary
from shriven.logging import configure_logging
from shriven.sim.samples import sample_records
from shriven.wal import StoreWriter, WalOptions
from shriven.wal.prune import sealed_segments

BATCH = 1_000


def build_store(path: Path, n: int, compression: bool) -> None:
    records = list(sample_records(n))
    options = WalOptions(segment_size=8 << 20, compression=compression, fsync_policy="never")
    with StoreWriter(path, options) as store:
        for i in range(0, n, BATCH):
            store.append_ticks(records[i : i + BATCH])


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument(
        "records",
        nargs="?",
        type=int,
        default=120_000,
        help="records per store",
    )
    n = ap.parse_args().records
    configure_logging("warning")
    root = Path(tempfile.mkdtemp(prefix="shriven-archive-bench-"))
    try:
        for compression in (True, False):
            measure(root / f"store-{compression}", n, compression)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def measure(store: Path, n: int, compression: bool) -> None:
    root = store.parent
    build_store(store, n, compression)
    segments = sealed_segments(store)["ticks"]
    total = sum(s.bytes for s in segments)
    print(
        f"store: {n:,} records, {len(segments)} sealed segments, {total / 1e6:.1f} MB "
        f"(frames {'zstd' if compression else 'uncompressed'}); machine shared, CPU time"
    )
    t = time.process_time()
    gz = sum(len(gzip.compress(p.read_bytes(), 9)) for s in segments for p in s.files)
    gz_s = time.process_time() - t
    print(f"gzip -9 (peer): ratio {total / gz:.2f}x, {total / gz_s / 1e6:.1f} MB/s")
    runs: list[tuple[str, int, bytes | None]] = [("zstd 19", 19, None), ("zstd 3", 3, None)]
    t = time.process_time()
    zdict = train_dictionary(segments)
    train_s = time.process_time() - t
    runs.append((f"zstd 19 + dictionary (trained in {train_s:.1f} s)", 19, zdict))
    for name, level, d in runs:
        dest = LocalDestination(root / f"out-{level}-{d is not None}")
        t = time.process_time()
        r = archive_segments(store, segments, dest, level=level, dictionary=d, remove=False)
        cpu = time.process_time() - t
        assert not r.failed, r.failed
        speed = r.original_bytes / cpu
        print(
            f"{name}: ratio {r.ratio:.2f}x ({r.ratio / (total / gz):.2f}x gzip's), "
            f"{speed / 1e6:.1f} MB/s ({speed / (total / gz_s):.2f}x gzip's speed)"
        )


if __name__ == "__main__":
    main()
