"""End-to-end ingestion: venue message bytes -> adapter parse -> queue -> WAL (durable) + books.

An in-process generator plays the socket: it hands each message's bytes to the adapter's own parse
function (Kite binary ticker packets, Binance combined-stream JSON diffs), stamps the receive time
and puts the records on the pipeline's queue, yielding to the event loop after every message as a
socket read would. The real pipeline (writer task, WAL with the default fsync policy, BookKeeper)
does the rest. Two phases per feed:

- throughput: the generator goes as fast as it can; records/s from the first byte parsed to the
  last record durable (fsynced);
- latency: the generator is paced at a fixed rate; receive-to-durable latency of every record
  (recv_ns to the end of the fsync that covered it), p50 and p99.

Targets (issue 14): Kite >= 300,000 full ticks/s, Binance >= 150,000 20-level diffs/s. Both are
printed as wall-clock rates and as records per CPU second of the process (loop and WAL thread),
which a shared machine distorts least.

    python benchmarks/ingest.py [--kite 500000] [--binance 200000] [--kite-rate 20000]
    python benchmarks/ingest.py --latency-only --binance-rate 20000   # the latency phase alone

The latency is also given from each message's scheduled arrival: what a record waited before
the generator read it (behind the loop, or at the queue's soft limit) counts there too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from shriven.app.startup import wal_options
from shriven.config import PipelineConfig
from shriven.events import BinanceDepthSnapshot, KiteTick, Record, SeqCounter
from shriven.feeds.binance.parse import parse_message as parse_binance
from shriven.feeds.kite.protocol import encode_message, encode_packet
from shriven.feeds.kite.protocol import parse_message as parse_kite
from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.memory import freeze_long_lived
from shriven.wal import StoreWriter

# issue 14's targets, records per second
TARGETS = {"Kite full ticks": 300_000, "Binance depth diffs": 150_000}
KITE_INSTRUMENTS = 90  # about two indices' universes
KITE_PACKETS_PER_MESSAGE = 50
BINANCE_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")
BINANCE_LEVELS_PER_SIDE = 10

Parse = Callable[[bytes, int, SeqCounter], list[Record]]


class TimedStore(StoreWriter):
    """A real store that notes when each record became durable (the end of the covering fsync)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.pending: list[int] = []
        self.latencies_ns: list[int] = []
        # recv_ns -> how late the paced generator read that message (0 when on time): the
        # latency from the message's scheduled arrival adds it (the generator's own waits,
        # e.g. at the queue's soft limit, would otherwise go unmeasured)
        self.late_ns: dict[int, int] = {}
        self.scheduled_latencies_ns: list[int] = []
        self.durable = 0
        self.last_durable_ns = 0
        inner = self.ticks.sync

        def sync() -> None:
            inner()
            now = time.time_ns()
            self.latencies_ns.extend(now - t for t in self.pending)
            late = self.late_ns
            self.scheduled_latencies_ns.extend(now - t + late.get(t, 0) for t in self.pending)
            self.durable += len(self.pending)
            self.pending.clear()
            self.last_durable_ns = now

        self.ticks.sync = sync  # type: ignore[method-assign]

    def append_ticks(self, records: Sequence[Record]) -> int:
        n = super().append_ticks(records)
        self.pending.extend(r.recv_ns for r in records)
        return n


# ---------------------------------------------------------------- messages


def kite_messages(n_ticks: int, seed: int = 3) -> list[bytes]:
    rng = random.Random(seed)
    tokens = [(12_000_000 + i * 256) | 2 for i in range(KITE_INSTRUMENTS)]  # NFO tokens
    prices = {t: rng.randrange(5_000, 500_000, 5) for t in tokens}
    out = []
    for _ in range(n_ticks // KITE_PACKETS_PER_MESSAGE):
        packets = []
        for _ in range(KITE_PACKETS_PER_MESSAGE):
            tok = rng.choice(tokens)
            px = max(100, prices[tok] + rng.choice((-10, -5, 0, 5, 10)))
            prices[tok] = px
            bids = tuple(
                (px - 5 * (i + 1), rng.randrange(1, 5000), rng.randrange(1, 50)) for i in range(5)
            )
            asks = tuple(
                (px + 5 * (i + 1), rng.randrange(1, 5000), rng.randrange(1, 50)) for i in range(5)
            )
            tick = KiteTick(
                0, 0, tok, "full", px, rng.randrange(1, 500), px, rng.randrange(1, 10**7),
                rng.randrange(1, 10**6), rng.randrange(1, 10**6), px, px + 50, px - 50, px,
                1_764_000_000, rng.randrange(1, 10**6), 0, 0, 1_764_000_000, bids, asks,
            )  # fmt: skip
            packets.append(encode_packet(tick))
        out.append(encode_message(packets))
    return out


def binance_messages(n_diffs: int, seed: int = 4) -> tuple[list[Record], list[bytes]]:
    """Snapshots that start each book at update id 0, then in-sequence depthUpdate messages."""
    rng = random.Random(seed)
    snaps: list[Record] = []
    mids = {}
    for i, sym in enumerate(BINANCE_SYMBOLS):
        mid = 100_000 * (i + 1)
        mids[sym] = mid
        bids = tuple((f"{(mid - k) / 100:.2f}", "1.00000000") for k in range(1, 101))
        asks = tuple((f"{(mid + k) / 100:.2f}", "1.00000000") for k in range(1, 101))
        snaps.append(BinanceDepthSnapshot(0, 0, sym, 0, bids, asks))
    last = dict.fromkeys(BINANCE_SYMBOLS, 0)
    out = []
    for _ in range(n_diffs):
        sym = rng.choice(BINANCE_SYMBOLS)
        first = last[sym] + 1
        last[sym] = first + rng.randrange(0, 5)
        mid = mids[sym]
        b = [
            [
                f"{(mid - rng.randrange(1, 120)) / 100:.2f}",
                f"{rng.choice((0, rng.random() * 5)):.8f}",
            ]
            for _ in range(BINANCE_LEVELS_PER_SIDE)
        ]
        a = [
            [
                f"{(mid + rng.randrange(1, 120)) / 100:.2f}",
                f"{rng.choice((0, rng.random() * 5)):.8f}",
            ]
            for _ in range(BINANCE_LEVELS_PER_SIDE)
        ]
        data = {"e": "depthUpdate", "E": 1, "s": sym, "U": first, "u": last[sym], "b": b, "a": a}
        msg = {"stream": f"{sym.lower()}@depth@100ms", "data": data}
        out.append(json.dumps(msg, separators=(",", ":")).encode())
    return snaps, out


def binance_parse(raw: bytes, recv_ns: int, seq: SeqCounter) -> list[Record]:
    rec = parse_binance(raw, recv_ns, seq.next())
    return [rec] if rec is not None else []


# ---------------------------------------------------------------- running


async def ingest(
    messages: list[bytes],
    parse: Parse,
    preamble: list[Record],
    data_dir: Path,
    rate: float | None,
    fsync_policy: str = "interval",
    scheduled: list[int] | None = None,
) -> tuple[int, float, list[int], Pipeline, float]:
    """``scheduled`` (paced runs) gets each record's latency from its message's scheduled
    arrival."""
    if scheduled is None:
        scheduled = []
    cfg = PipelineConfig(
        data_dir=data_dir,
        snapshot_interval_secs=60,
        fsync_policy=fsync_policy,  # type: ignore[arg-type]
    )
    holder: list[TimedStore] = []

    def open_store() -> StoreWriter:
        store = TimedStore(data_dir, wal_options(cfg))
        holder.append(store)
        return store

    p = Pipeline(cfg, open_store=open_store, health_port=None)
    await p.start()
    q = p.queue
    for r in preamble:
        r.recv_ns = time.time_ns()
        await q.put(r)
    seq = SeqCounter()
    total = 0
    t0 = time.perf_counter()
    cpu0 = time.process_time()  # every thread of this process: the loop and the WAL thread
    interval = 0.0
    if rate:
        per_msg = len(parse(messages[0], 0, SeqCounter()))
        interval = per_msg / rate
    next_at = time.perf_counter()
    for m in messages:
        late = 0
        if interval:
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(0, int((time.perf_counter() - next_at) * 1e9))
        recv_ns = time.time_ns()
        if late:
            holder[-1].late_ns[recv_ns] = late
        recs = parse(m, recv_ns, seq)
        await q.put_many(recs)  # as the Kite feed hands over one message's ticks
        total += len(recs)
        await asyncio.sleep(0)  # a socket read would yield here
    store = holder[-1]
    want = total + len(preamble) + 1  # + the pipeline's "started" marker
    while store.durable < want:
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    latencies = list(store.latencies_ns)
    scheduled.extend(store.scheduled_latencies_ns)
    await p.shutdown()
    return total, elapsed, latencies, p, cpu


def pct(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] / 1e6


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kite", type=int, default=400_000, help="Kite full ticks (throughput)")
    ap.add_argument("--binance", type=int, default=150_000, help="Binance diffs (throughput)")
    ap.add_argument("--kite-rate", type=float, default=20_000, help="Kite ticks/s, latency phase")
    ap.add_argument("--binance-rate", type=float, default=5_000, help="diffs/s, latency phase")
    ap.add_argument("--latency-seconds", type=float, default=3.0)
    ap.add_argument(
        "--latency-only",
        action="store_true",
        help="only the paced receive-to-durable phase (issue 14's latency target)",
    )
    args = ap.parse_args()

    print("generating messages ...", flush=True)
    kite_n = int(args.kite_rate * args.latency_seconds) // KITE_PACKETS_PER_MESSAGE
    bin_n = int(args.binance_rate * args.latency_seconds)
    if args.latency_only:
        args.kite = max(1, kite_n) * KITE_PACKETS_PER_MESSAGE
        args.binance = max(1, bin_n)
    kite = kite_messages(args.kite)
    bsnaps, bmsgs = binance_messages(args.binance)
    cases = [
        ("Kite full ticks", kite, parse_kite, [], kite[: max(1, kite_n)], args.kite_rate, 1),
        (
            "Binance depth diffs",
            bmsgs,
            binance_parse,
            bsnaps,
            bmsgs[: max(1, bin_n)],
            args.binance_rate,
            2 * BINANCE_LEVELS_PER_SIDE,
        ),
    ]
    freeze_long_lived()  # as `shriven run` does once start-up is done
    d = PipelineConfig()
    print(
        f"pipeline defaults: fsync every {d.fsync_interval_ms} ms, zstd on, "
        f"batches <= {d.batch_max_records} records / {d.batch_max_ms} ms"
    )
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, msgs, parse, pre, lat_msgs, lat_rate, levels in cases:
        with tempfile.TemporaryDirectory(prefix="shriven-ingest-") as tmp:
            lat_runs = {}
            sched_runs: dict[str, list[int]] = {}
            for policy in ("interval", "always"):
                sched_runs[policy] = []
                _n, _e, lat, _p, _c = await ingest(
                    lat_msgs,
                    parse,
                    _copies(pre),
                    Path(tmp) / policy,
                    lat_rate,
                    policy,
                    sched_runs[policy],
                )
                lat_runs[policy] = lat
            if not args.latency_only:
                n, elapsed, _lat, p, cpu = await ingest(
                    msgs, parse, _copies(pre), Path(tmp) / "a", None
                )
        for policy, lat in lat_runs.items():
            sched = sched_runs[policy]
            print(
                f"{name:20s} receive-to-durable at {lat_rate:,.0f} records/s, fsync {policy:8s}: "
                f"p50 {pct(lat, 0.5):6.1f} ms, p99 {pct(lat, 0.99):6.1f} ms, "
                f"mean {statistics.fmean(lat) / 1e6 if lat else float('nan'):6.1f} ms "
                f"({len(lat):,} records); from the scheduled arrival p50 {pct(sched, 0.5):6.1f} "
                f"ms, p99 {pct(sched, 0.99):6.1f} ms"
            )
        if args.latency_only:
            continue
        rate = n / elapsed
        batches = p.stats.batches or 1
        per_level = f", {rate * levels:,.0f} level changes/s" if levels > 1 else ""
        print(
            f"{name:20s} {n:>9,} records in {elapsed:5.2f} s = {rate:>9,.0f} records/s"
            f"{per_level} ({rate / TARGETS[name]:.2f}x the {TARGETS[name]:,}/s target; mean batch "
            f"{p.stats.records_written / batches:,.0f} records; {p.stats.books} books)"
        )
        # CPU time of the process (event loop + WAL thread): what a shared machine inflates
        # least; records per CPU second is the rate one free core would give
        print(
            f"{'':20s} CPU {cpu:5.2f} s = {cpu / n * 1e6:5.2f} us a record, "
            f"{n / cpu:>9,.0f} records per CPU second"
        )


def _copies(records: list[Record]) -> list[Record]:
    return [_copy(r) for r in records]


def _copy(r: Record) -> Record:
    import dataclasses

    return dataclasses.replace(r)  # type: ignore[type-var]


if __name__ == "__main__":
    asyncio.run(main())
