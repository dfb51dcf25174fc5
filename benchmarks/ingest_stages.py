"""Where ingest's CPU goes: each stage of the recorder path timed alone, CPU per record.

The same messages as ``ingest.py`` (Binance 20-level diffs on three symbols, Kite full ticks on
90 instruments) go through each stage in turn: the adapter's parser, the books (BookKeeper),
the recorder's sanity check, the per-stream count, the WAL's msgpack encode and zstd, and
freeing the records. Kite's books and checks are timed as the recorder's batch pass runs them
(one book update per instrument and batch; every tick's book update is shown beside it, not
summed). The sum is the rate one core would reach if the event loop, queue and disk cost
nothing; ``ingest.py`` measures the real pipeline. CPU time (time.process_time_ns), best of
three (freeing: once).

    python benchmarks/ingest_stages.py [--binance 20000] [--kite 50000]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

import zstandard

from ingest import binance_messages, binance_parse, kite_messages
from shriven.book import BookKeeper
from shriven.events import BinanceDepth, Record, SeqCounter, encode_batch
from shriven.feeds.kite.protocol import parse_message as parse_kite
from shriven.pipeline.recorder import RecorderLoop
from shriven.pipeline.stats import PipelineStats
from shriven.pipeline.validate import check_depth, check_record
from shriven.wal.store import count_streams


def timed(label: str, fn: Callable[[], object], n: int) -> float:
    """Best of three CPU times of ``fn``, printed and returned in ns per record."""
    gc.collect()
    best = min(_cpu(fn) for _ in range(3))
    print(f"  {label:44s} {best / n / 1000:7.2f} us a record")
    return best / n


def _cpu(fn: Callable[[], object]) -> int:
    t = time.process_time_ns()
    fn()
    return time.process_time_ns() - t


def stages(
    name: str,
    records: list[Record],
    parse: Callable[[], None],
    n: int,
    per: int,
    coalesced: bool = False,
) -> None:
    """``coalesced``: time the books and checks as the recorder's batch pass runs them
    (RecorderLoop._apply: a Kite book from each instrument's last full tick of a batch)."""
    zstd = zstandard.ZstdCompressor(level=1)
    print(f"{name}: CPU per record")
    total = timed("parse (bytes -> records)", parse, n)
    batches = [records[i : i + per] for i in range(0, len(records), per)]

    def books() -> None:
        keeper = BookKeeper()
        for r in records:
            keeper.apply(r)

    def check() -> None:
        # what the recorder runs: diffs take the books' verdict on their levels
        for r in records:
            if type(r) is BinanceDepth:
                check_depth(r, False)
            else:
                check_record(r)

    if coalesced:
        # the recorder's own pass, on a bare loop (no queue, store or metrics: none is used
        # unless a book raises)
        loop = RecorderLoop.__new__(RecorderLoop)
        loop.stats = PipelineStats()

        def recorder_pass() -> None:
            loop.books = BookKeeper()
            for b in batches:
                loop._apply(b)

        total += timed("recorder pass: books per batch, checks", recorder_pass, n)
        timed("(not summed) books of every record", books, n)
        timed("(not summed) check_record of every record", check, n)
    else:
        total += timed("books (BookKeeper.apply of every record)", books, n)
        total += timed("sanity check (check_depth, check_record)", check, n)
    total += timed("per-stream count", lambda: count_streams({}, records), n)
    payloads: list[bytes] = []

    def encode() -> None:
        payloads[:] = [encode_batch(b) for b in batches]

    total += timed(f"WAL encode, msgpack ({per}-record frames)", encode, n)
    total += timed("zstd", lambda: [zstd.compress(p) for p in payloads], n)
    gc.collect()
    t = time.process_time_ns()
    records.clear()
    batches.clear()
    freed = (time.process_time_ns() - t) / n
    print(f"  {'records freed (once)':44s} {freed / 1000:7.2f} us a record")
    total += freed
    print(f"  {'sum':44s} {total / 1000:7.2f} us -> {1e9 / total:,.0f} records per CPU second\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binance", type=int, default=20_000)
    ap.add_argument("--kite", type=int, default=50_000)
    args = ap.parse_args()

    snaps, msgs = binance_messages(args.binance)
    diffs: list[Record] = []

    def parse_diffs() -> None:
        seq = SeqCounter()
        diffs[:] = list(snaps)
        for m in msgs:
            diffs.extend(binance_parse(m, 1, seq))

    parse_diffs()
    stages("Binance depth diffs, 20 levels", diffs, parse_diffs, len(msgs), 500)

    packets = kite_messages(args.kite)
    ticks: list[Record] = []

    def parse_ticks() -> None:
        ticks[:] = [t for m in packets for t in parse_kite(m, 1, SeqCounter())]

    parse_ticks()
    stages("Kite full ticks", ticks, parse_ticks, len(ticks), 2000, coalesced=True)


if __name__ == "__main__":
    main()
