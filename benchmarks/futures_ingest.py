"""Ingest of USD-M futures @0ms depth diffs: bytes -> parse -> queue -> durable WAL + books.

The @0ms stream sends a diff per book change: many small diffs (one to three levels) per second
per symbol, ``pu``-chained, update ids shared by every symbol. The same harness as
benchmarks/ingest.py (the real pipeline: writer task, WAL fsynced by the default policy,
BookKeeper with FuturesDepthSync) runs, in the same process, on

  futures @0ms   fstream combined-stream messages, parsed by
                 shriven.feeds.binance.streams.parse_venue_message
  spot @100ms    the spot diffs of benchmarks/ingest.py (10 levels a side), parsed by
                 shriven.feeds.binance.parse.parse_message: the peer figure

and prints diffs/s and level changes/s from the first byte parsed to the last record durable,
the CPU time per diff, and the ratio of the futures figures to spot's.

    PYTHONPATH=src python benchmarks/futures_ingest.py [--futures 200000] [--spot 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

from ingest import BINANCE_LEVELS_PER_SIDE, _copies, binance_messages, binance_parse, ingest
from shriven.events import BinanceFuturesDepthSnapshot, Record, SeqCounter
from shriven.feeds.binance.streams import parse_venue_message

VENUE = "binance-usdm"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")


def futures_messages(n_diffs: int, seed: int = 5) -> tuple[list[Record], list[bytes], int]:
    """Snapshots at each symbol's first id, then pu-chained @0ms diffs of 1..3 levels; returns
    the level changes too."""
    rng = random.Random(seed)
    next_id = 1_000_000_000
    last: dict[str, int] = {}
    mids = {}
    snaps: list[Record] = []
    for i, sym in enumerate(SYMBOLS):
        mid = 1_000_000 * (i + 1)
        mids[sym] = mid
        bids = tuple((f"{(mid - k) / 10:.1f}", "1.000") for k in range(1, 501))
        asks = tuple((f"{(mid + k) / 10:.1f}", "1.000") for k in range(1, 501))
        last[sym] = next_id
        snaps.append(BinanceFuturesDepthSnapshot(0, 0, VENUE, sym, next_id, 0, 0, bids, asks))
        next_id += 1
    out = []
    levels = 0
    t_ms = 1_700_000_000_000
    for _ in range(n_diffs):
        sym = rng.choice(SYMBOLS)
        first = next_id + rng.randrange(0, 3)  # ids other symbols took in between
        u = first + rng.randrange(0, 2)
        next_id = u + 1
        mid = mids[sym]
        n = rng.randint(1, 3)
        side = [
            [
                f"{(mid + rng.choice((-1, 1)) * rng.randrange(1, 60)) / 10:.1f}",
                f"{rng.random() * 9:.3f}",
            ]
            for _ in range(n)
        ]
        b = [lvl for lvl in side if float(lvl[0]) * 10 < mid]
        a = [lvl for lvl in side if float(lvl[0]) * 10 > mid]
        levels += len(b) + len(a)
        t_ms += 1
        data = {
            "e": "depthUpdate", "E": t_ms, "T": t_ms - 1, "s": sym, "U": first, "u": u,
            "pu": last[sym], "b": b, "a": a,
        }  # fmt: skip
        last[sym] = u
        msg = {"stream": f"{sym.lower()}@depth@0ms", "data": data}
        out.append(json.dumps(msg, separators=(",", ":")).encode())
    return snaps, out, levels


def futures_parse(raw: bytes, recv_ns: int, seq: SeqCounter) -> list[Record]:
    rec = parse_venue_message(raw, recv_ns, VENUE, seq.next())
    return [rec] if rec is not None else []


async def run(name: str, msgs: list[bytes], parse, pre: list[Record], levels: int):  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory(prefix="shriven-futures-ingest-") as tmp:
        cpu0 = time.process_time()
        n, elapsed, _lat, p = await ingest(msgs, parse, _copies(pre), Path(tmp) / "a", None)
        cpu = time.process_time() - cpu0
    gaps = p.books.stats.gaps
    rate = n / elapsed
    print(
        f"{name:16s} {n:>9,} diffs in {elapsed:5.2f} s = {rate:>9,.0f} diffs/s, "
        f"{levels / elapsed:>10,.0f} level changes/s; CPU {cpu / n * 1e6:5.1f} µs/diff "
        f"({p.books.stats.applied:,} applied, {gaps} gaps, {p.stats.books} books)"
    )
    return rate, levels / elapsed, cpu / n


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--futures", type=int, default=200_000, help="USD-M @0ms diffs")
    ap.add_argument("--spot", type=int, default=100_000, help="spot @100ms diffs (the peer)")
    args = ap.parse_args()
    print("generating messages ...", flush=True)
    fsnaps, fmsgs, flevels = futures_messages(args.futures)
    ssnaps, smsgs = binance_messages(args.spot)
    slevels = 2 * BINANCE_LEVELS_PER_SIDE * len(smsgs)
    f_rate, f_levels, f_cpu = await run("USD-M @0ms", fmsgs, futures_parse, fsnaps, flevels)
    s_rate, s_levels, s_cpu = await run("spot @100ms", smsgs, binance_parse, ssnaps, slevels)
    print(
        f"futures / spot: {f_rate / s_rate:.2f}x the diffs/s, {f_levels / s_levels:.2f}x the "
        f"level changes/s, {f_cpu / s_cpu:.2f}x the CPU per diff (one machine, one run)"
    )


if __name__ == "__main__":
    asyncio.run(main())
