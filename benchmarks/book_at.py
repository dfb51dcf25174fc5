"""One Binance book at an instant from a 5-million-record store, in a cold process: the time
from starting ``shriven replay book`` to its printed book, with the columnar index
(``shriven replay index``) beside the sealed segments.

The store is benchmarks/replay.py's (65% depth diffs over three symbols, 10% trades, 25% Kite
full ticks, zstd frames of 5,000 records) in 32 MB segments, and the instant is three quarters
in (a sealed segment). Two cases:
- from a snapshot: one BookSnapshot in the LOB WAL 60 s before the instant (the daemon writes
  one a minute; this one is the book rebuilt there), plus the changes after it;
- from the start: the same ticks without the LOB WAL, so every BTCUSDT diff up to the instant.
Wall and CPU time (the children's rusage) are both shown: on a shared machine CPU is the steadier.
Peer: the record-by-record rebuild (``book_at(..., columns=False)``, replay before the index) in
this process, same store and instant.

Target: <= 200 ms p50 from command start to printed book.
Usage: python benchmarks/book_at.py [records] [segment MB]
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _cli import parser
from replay import STEP_NS, T0, generate
from shriven.events import BookSnapshot
from shriven.replay import index_store
from shriven.replay.reconstruct import book_at
from shriven.replay.store import StoreReader
from shriven.wal import WalWriter

RUNS = 7
NS = 1_000_000_000


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# A cold process, not a cold install: an installed shriven has its bytecode compiled, so the
# children may write it, and one untimed run first writes what is missing. (With
# PYTHONDONTWRITEBYTECODE set and stale bytecode, every run compiled the changed modules.)
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    """Median wall and CPU seconds of RUNS runs of ``cmd`` (after one untimed), its output."""
    subprocess.run(cmd, capture_output=True, check=True, env=CHILD_ENV)
    times, cpu = [], []
    out = ""
    for _ in range(RUNS):
        t, c = time.perf_counter(), _child_cpu()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=CHILD_ENV)
        times.append(time.perf_counter() - t)
        cpu.append(_child_cpu() - c)
        out = done.stdout
    return statistics.median(times), statistics.median(cpu), out


def cold(data_dir: Path, at_ns: int) -> tuple[float, float, str]:
    """p50 wall and CPU seconds of ``shriven replay book`` in a new process, and its output."""
    shriven = Path(sys.executable).with_name("shriven")
    when = datetime.fromtimestamp(at_ns // NS, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    when += f".{at_ns % NS // 1000:06d}Z"
    cmd = [str(shriven), "replay", "book", "--symbol", "binance:BTCUSDT", "--at", when]
    cmd += ["--data-dir", str(data_dir), "--tz", "UTC", "--depth", "5"]
    return _timed(cmd)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("records", nargs="?", type=int, default=5_000_000, help="records in the store")
    ap.add_argument("segment_mb", nargs="?", type=int, default=32, help="segment size in MB")
    args = ap.parse_args()
    n, segment = args.records, args.segment_mb << 20
    root = Path(tempfile.mkdtemp(prefix="shriven-bookat-bench-"))
    try:
        full = root / "full"
        t = time.perf_counter()
        written = generate(full / "ticks", n, segment_size=segment)
        gen_s = time.perf_counter() - t
        segments = len(list((full / "ticks").glob("*.wal")))
        t = time.perf_counter()
        idx = index_store(full)
        index_s = time.perf_counter() - t
        at_ns = (
            T0 + (n * 3 // 4) * STEP_NS // 1000 * 1000
        )  # whole microseconds  # three quarters in: a sealed segment
        snap_ns = at_ns - 60 * NS
        seed = book_at(StoreReader(full), "binance:BTCUSDT", snap_ns).book
        bids, asks = seed.levels()
        with WalWriter(full / "lob", fsync_policy="never") as w:
            w.append([BookSnapshot(snap_ns, 1, "binance", "BTCUSDT", seed.update_id,
                                   tuple(bids), tuple(asks))])  # fmt: skip
        bare = root / "bare"
        bare.mkdir()
        (bare / "ticks").symlink_to(full / "ticks")
        snap_s, snap_cpu, snap_out = cold(full, at_ns)
        start_s, start_cpu, start_out = cold(bare, at_ns)
        t = time.process_time()
        peer = book_at(StoreReader(bare), "binance:BTCUSDT", at_ns, columns=False)
        peer_s = time.process_time() - t
        ours = book_at(StoreReader(bare), "binance:BTCUSDT", at_ns)
        assert ours.book.levels() == peer.book.levels() and ours.changes == peer.changes
        help_s, help_cpu = cold_help()
        replay_help_s, replay_help_cpu = cold_help("replay")
    finally:
        shutil.rmtree(root)
    print(
        f"store: {written:,} records in {segments} segments of {segment >> 20} MB (generated in "
        f"{gen_s:.0f} s); replay index wrote {idx.written} sidecars in {index_s:.1f} s"
    )
    print(f"{'cold process, p50 of ' + str(RUNS):<62}{'wall':>9}{'CPU':>9}")

    def row(label: str, wall: float, cpu: float) -> None:
        print(f"{label:<62}{wall * 1e3:>6.0f} ms{cpu * 1e3:>6.0f} ms")

    row("`shriven --help` (interpreter + imports)", help_s, help_cpu)
    row("`shriven replay --help`", replay_help_s, replay_help_cpu)
    row("BTCUSDT book, from a snapshot 60 s before + changes after it", snap_s, snap_cpu)
    row(f"BTCUSDT book, from the start of the store ({peer.changes:,} diffs)", start_s, start_cpu)
    print(
        f"peer: record-by-record rebuild from the start (book_at columns=False), in process: "
        f"{peer_s * 1e3:,.0f} ms CPU ({peer.changes / peer_s:,.0f} diffs/s); the indexed cold "
        f"process takes {start_cpu / peer_s:.2f}x its CPU"
    )
    print("target: <= 200 ms p50 from command start to printed book")
    assert "BTCUSDT" in snap_out and "BTCUSDT" in start_out


def cold_help(*words: str) -> tuple[float, float]:
    """p50 wall and CPU seconds of ``shriven WORDS --help`` (interpreter and imports)."""
    wall, cpu, _out = _timed([str(Path(sys.executable).with_name("shriven")), *words, "--help"])
    return wall, cpu


if __name__ == "__main__":
    main()
