"""WAL read as raw values: every frame into numpy columns (``replay.colscan.scan_wal``) beside
today's record-by-record readers of the same store, measured in the same run.

Target (issue 14): WAL read as raw values >= 5M records/s. The columns are every record's type,
recv_ns, seq, book kind, instrument and update ids, and one row per level change (price and
quantity as the book keeper's doubles). Peers: ``WalReader.wire()`` (the msgpack arrays, today's
raw path) and ``WalReader.records()`` (record objects). CPU time (time.process_time), best of
RUNS, so a shared machine disturbs the figure less; the ratios are the comparison. Also the
zstd decompression alone, three ways (the reader's one reused decompressor, a new one per frame,
``multi_decompress_to_buffer`` over every frame), since it is a floor under the zstd figure.
Usage: python benchmarks/wal_columns.py [records]
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

import zstandard

from _cli import parser
from _walbench import cpu_best, make_records
from shriven.replay.colscan import ACCELERATED, scan_wal
from shriven.wal import WalReader, WalWriter
from shriven.wal.gc import scan_gc

BATCH = 1_000
RUNS = 3


def cpu_secs(fn: Callable[[], object]) -> float:
    return cpu_best(fn, RUNS)[0]


def columns(d: Path) -> int:
    return sum(len(c) for c in scan_wal(WalReader(d)))


def zstd_bodies(d: Path) -> list[tuple[bytes, int]]:
    """Each frame's compressed body and its size once decompressed, read back through the
    reader's own frames, recompressed at the writer's default level 1."""
    level = zstandard.ZstdCompressor(level=1)  # WalWriter's compression_level
    return [(level.compress(f.payload), len(f.payload)) for f in WalReader(d).frames()]


def zstd_ways(bodies: list[tuple[bytes, int]]) -> dict[str, float]:
    dctx = zstandard.ZstdDecompressor()
    sizes = struct.pack(f"={len(bodies)}Q", *(s for _b, s in bodies))
    frames = [b for b, _s in bodies]

    def reused() -> None:
        for b, s in bodies:
            dctx.decompress(b, max_output_size=s, allow_extra_data=False)

    def fresh() -> None:
        for b, s in bodies:
            zstandard.ZstdDecompressor().decompress(b, max_output_size=s)

    def multi() -> None:
        dctx.multi_decompress_to_buffer(frames, decompressed_sizes=sizes, threads=0)

    return {
        "one decompressor reused (the reader's way)": cpu_secs(reused),
        "a new decompressor per frame": cpu_secs(fresh),
        "multi_decompress_to_buffer, every frame": cpu_secs(multi),
    }


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("records", nargs="?", type=int, default=300_000, help="records")
    n = ap.parse_args().records
    records = make_records(n)
    root = Path(tempfile.mkdtemp(prefix="shriven-bench-"))
    rows = []
    try:
        for compression in (False, True):
            with WalWriter(
                root / f"wal-{compression}", compression=compression, segment_size=16 << 20
            ) as w:
                for i in range(0, n, BATCH):
                    w.append(records[i : i + BATCH])
        del records
        bodies = zstd_bodies(root / "wal-True")
        zstd = zstd_ways(bodies)
        with scan_gc():
            for compression in (False, True):
                d = root / f"wal-{compression}"
                assert columns(d) == n
                col = cpu_secs(lambda d=d: columns(d))
                wire = cpu_secs(lambda d=d: deque(WalReader(d).wire(), maxlen=0))
                objs = cpu_secs(lambda d=d: deque(WalReader(d).records(), maxlen=0))
                rows.append((compression, col, wire, objs))
    finally:
        shutil.rmtree(root)
    print(
        f"{n:,} records (sim samples: Kite full ticks, Binance diffs and trades), frames of "
        f"{BATCH}; CPU time, best of {RUNS}; C scanner built: {ACCELERATED}"
    )
    print(
        f"{'store':<10}{'columns/s':>14}{'wire()/s':>14}{'records()/s':>14}"
        f"{'vs wire':>10}{'vs records':>12}"
    )
    for compression, col, wire, objs in rows:
        print(
            f"{'zstd' if compression else 'plain':<10}{n / col:>14,.0f}{n / wire:>14,.0f}"
            f"{n / objs:>14,.0f}{wire / col:>9.1f}x{objs / col:>11.1f}x"
        )
    for way, secs in zstd.items():
        print(f"zstd alone, {way:<45}{n / secs:>12,.0f} records/s")
    print("target: WAL read as raw values >= 5M records/s")


if __name__ == "__main__":
    main()
