"""Replay scan and book reconstruction speed on a store of >= 5 million records, beside pandas
reading the same records from JSON lines.

The store is generated here (zstd frames of 5,000 records through the real WalWriter): 65%
Binance depth diffs over three symbols (each starting from a 1,000-level REST snapshot, ids in
sequence), 10% Binance trades, 25% Kite full ticks over 20 instruments.

Figures:
- scan: every record decoded into record objects (``StoreReader.ticks.records()``), and the msgpack
  arrays alone (``wire()``);
- reconstruction: one symbol's book rebuilt over the whole store through the replay path
  (``book_states``: other instruments are dropped before decoding), and every book rebuilt by
  a BookKeeper from the first million records already decoded (the book work alone);
- peer: ``pandas.read_json(lines=True)`` on the first records of the same store written as
  JSON lines (engine="pyarrow" cannot read them: Kite levels are numbers where Binance's are
  strings). pandas needs about 10-25 us a record here, so
  it reads a sample to keep the script under two minutes; rates are per record.

Seed's target: reconstruction > 1M ticks/s. Usage: python benchmarks/replay.py [records]
"""

from __future__ import annotations

import dataclasses
import gc
import json
import random
import shutil
import tempfile
import time
from collections import deque
from pathlib import Path

import pandas as pd

from _cli import parser
from shriven.book import BookKeeper
from shriven.events import (
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceTrade,
    KiteTick,
    Record,
)
from shriven.replay.books import Rebuilder
from shriven.replay.reconstruct import book_states
from shriven.replay.store import StoreReader
from shriven.wal import WalWriter
from shriven.wal.gc import scan_gc

BATCH = 5_000
T0 = 1_795_146_300 * 1_000_000_000
STEP_NS = 50_000  # 20k records/s of market time
SYMBOLS = {"BTCUSDT": 6_700_000, "ETHUSDT": 350_000, "SOLUSDT": 24_000}
TOKENS = [(60_000 + i) << 8 | 2 for i in range(20)]
PANDAS_SAMPLE = 200_000
# Of every 20 records: 13 diffs, 2 trades, 5 Kite full ticks.
PATTERN = ["d"] * 13 + ["t"] * 2 + ["k"] * 5


def _px(cents: int) -> str:
    return f"{cents / 100:.8f}"


def _templates(rng: random.Random) -> tuple[dict, list]:
    """Level changes per symbol (cycled, so the book stays about 1,000 levels a side) and Kite
    depth templates."""
    diffs = {}
    for sym, mid in SYMBOLS.items():
        pool = []
        for _ in range(4096):
            sides: list[list[tuple[str, str]]] = [[], []]
            for _ in range(rng.randint(1, 6)):
                bid = rng.random() < 0.5
                off = int(rng.expovariate(1 / 60)) % 999 + 1
                qty = "0.00000000" if rng.random() < 0.15 else f"{rng.randint(1, 5000) / 1000:.8f}"
                sides[0 if bid else 1].append((_px(mid - off if bid else mid + off), qty))
            pool.append((tuple(sides[0]), tuple(sides[1])))
        diffs[sym] = pool
    kite = []
    for i in range(512):
        mid = 2_450_000 + 5 * (i % 40)
        bids = tuple((mid - 5 * j, rng.randint(1, 40) * 75, rng.randint(1, 9)) for j in range(1, 6))
        asks = tuple((mid + 5 * j, rng.randint(1, 40) * 75, rng.randint(1, 9)) for j in range(1, 6))
        kite.append((mid, bids, asks))
    return diffs, kite


def generate(directory: Path, n: int, segment_size: int = 100 << 20) -> int:
    rng = random.Random(42)
    diffs, kite = _templates(rng)
    u = dict.fromkeys(SYMBOLS, 10_000_000)
    kseq = bseq = 0
    trade_id = 0
    out: list[Record] = []
    t = T0
    for sym, mid in SYMBOLS.items():
        bseq += 1
        bids = tuple((_px(mid - i), "1.00000000") for i in range(1, 1001))
        asks = tuple((_px(mid + i), "1.00000000") for i in range(1, 1001))
        out.append(BinanceDepthSnapshot(t, bseq, sym, u[sym], bids, asks))
    syms = list(SYMBOLS)
    gc.disable()
    written = 0
    with WalWriter(
        directory, segment_size=segment_size, compression=True, fsync_policy="never"
    ) as w:
        for i in range(len(out), n):
            t += STEP_NS
            slot = PATTERN[i % 20]
            if slot == "d":
                sym = syms[i % 3]
                first = u[sym] + 1
                last = first + (i & 3)
                u[sym] = last
                b, a = diffs[sym][(i // 3) & 4095]
                bseq += 1
                out.append(BinanceDepth(t, bseq, sym, first, last, t // 1_000_000, b, a))
            elif slot == "t":
                sym = syms[i % 3]
                trade_id += 1
                bseq += 1
                out.append(
                    BinanceTrade(
                        t, bseq, sym, trade_id, _px(SYMBOLS[sym]), "0.01000000",
                        t // 1_000_000 - 2, t // 1_000_000 - 1, bool(i & 1),
                    )
                )  # fmt: skip
            else:
                mid, bids, asks = kite[i & 511]
                kseq += 1
                out.append(
                    KiteTick(
                        t, kseq, TOKENS[i % 20], "full", mid, 75, mid - 3, 10_000 + i,
                        5_000, 6_000, mid - 100, mid + 150, mid - 200, mid - 50,
                        t // 1_000_000_000, 123_456, 0, 0, t // 1_000_000_000, bids, asks,
                    )
                )  # fmt: skip
            if len(out) >= BATCH:
                w.append(out)
                written += len(out)
                out = []
        if out:
            w.append(out)
            written += len(out)
    gc.enable()
    return written


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def drain(it: object) -> int:
    n = 0
    for _ in it:  # type: ignore[attr-defined]
        n += 1
    return n


def to_json_line(r: Record) -> str:
    d = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}  # type: ignore[arg-type]
    d["type"] = type(r).__name__
    return json.dumps(d, separators=(",", ":"))


def in_memory(root: Path, jsonl: Path) -> tuple[float, int, int, int]:
    """Every book rebuilt from the first million records, already decoded (the book work alone,
    what verify-books does per record); writes the pandas sample from the same records."""
    sample = list(_first(StoreReader(root).ticks.records(), 1_000_000))
    keeper = BookKeeper()
    mem_s, _ = timed(lambda: deque(map(keeper.apply, sample), maxlen=0))
    st = keeper.stats
    with open(jsonl, "w", encoding="utf-8") as f:
        for r in sample[:PANDAS_SAMPLE]:
            f.write(to_json_line(r))
            f.write("\n")
    return mem_s, st.applied + st.snapshots + st.kite_depth, st.levels, len(sample)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("records", nargs="?", type=int, default=5_000_000, help="records")
    n = ap.parse_args().records
    root = Path(tempfile.mkdtemp(prefix="shriven-replay-bench-"))
    try:
        gen_s, written = timed(lambda: generate(root / "ticks", n))
        size = sum(p.stat().st_size for p in (root / "ticks").glob("*.wal"))
        print(
            f"store: {written:,} records, {size / 1e6:.0f} MB zstd in "
            f"{len(list((root / 'ticks').glob('*.wal')))} segments, written in {gen_s:.1f} s"
        )
        print("every figure below runs with replay's scan GC setting (wal.gc.scan_gc)")
        gc_ctx = scan_gc()
        gc_ctx.__enter__()
        store = StoreReader(root)
        scan_s, scanned = timed(lambda: drain(store.ticks.records()))
        wire_s, _ = timed(lambda: deque(StoreReader(root).ticks.wire(), maxlen=0))

        reb = Rebuilder()
        one_s, states = timed(
            lambda: drain(book_states(StoreReader(root), "binance:BTCUSDT", None, None, reb))
        )
        one_levels = reb.keeper.stats.levels
        mem_s, mem_changes, mem_levels, mem_n = in_memory(root, root / "sample.jsonl")
        gc_ctx.__exit__(None, None, None)
        pd_s, rows = timed(lambda: len(pd.read_json(root / "sample.jsonl", lines=True)))
        assert rows == PANDAS_SAMPLE
    finally:
        shutil.rmtree(root)

    pd_rate = PANDAS_SAMPLE / pd_s
    scan_rate = scanned / scan_s
    print(f"{'':<60}{'per second':>12}  vs pandas")

    def row(label: str, rate: float, ratio: bool = True) -> None:
        tail = f"  {rate / pd_rate:>8.1f}x" if ratio else ""
        print(f"{label:<58}{rate:>14,.0f}{tail}")

    row("scan: records decoded to objects", scan_rate)
    row("scan: msgpack arrays only (wire)", scanned / wire_s)
    row(f"reconstruct BTCUSDT via book_states: diffs applied ({states:,})", states / one_s, False)
    row("  level changes applied", one_levels / one_s, False)
    row("  store records passed (others dropped before decoding)", scanned / one_s)
    row(f"every book, first {mem_n:,} records decoded in memory:", mem_changes / mem_s, False)
    print("    book changes (diffs, REST snapshots, Kite 5-level replaces) per second")
    row("  records passed", mem_n / mem_s, False)
    row("  level changes applied", mem_levels / mem_s, False)
    row(f"pandas.read_json(lines=True) of the first {PANDAS_SAMPLE:,} records", pd_rate, False)
    print(
        f"target: reconstruction > 1M ticks/s. pandas would take {scanned / pd_rate:.0f} s to "
        f"read the whole store at its rate; replay decodes it in {scan_s:.1f} s"
    )


def _first(it, n: int):  # type: ignore[no-untyped-def]
    for i, r in enumerate(it):
        if i >= n:
            return
        yield r


if __name__ == "__main__":
    main()
