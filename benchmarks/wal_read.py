"""WAL read-scan throughput against a JSON-lines reader of the same records.

Target: >= 1M records/s. Measured two ways: ``records()`` builds the record dataclasses (peer:
json.loads + the same dataclasses), ``wire()`` yields the decoded msgpack arrays without building
objects (peer: json.loads dicts). Also a time-range read of the last 1% through the sparse
index, and ``records()`` with the record objects built in C (shriven._records) against the same
read through the pure-Python decoders it replaced, in CPU time (issue 14's target: >= 3M
records/s into record objects).
Usage: python benchmarks/wal_read.py [records]
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections import deque
from pathlib import Path

from _cli import parser
from _walbench import best_of, cpu_best, make_records, read_jsonl, write_jsonl
from shriven import events
from shriven.wal import WalReader, WalWriter
from shriven.wal.gc import scan_gc

BATCH = 1_000
RUNS = 3


def drain(it: object) -> None:
    deque(it, maxlen=0)  # type: ignore[call-overload]


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("records", nargs="?", type=int, default=300_000, help="records")
    n = ap.parse_args().records
    records = make_records(n)
    batches = [records[i : i + BATCH] for i in range(0, n, BATCH)]
    root = Path(tempfile.mkdtemp(prefix="shriven-bench-"))
    rows: list[tuple[str, float, float]] = []
    try:
        for compression in (False, True):
            with WalWriter(
                root / f"wal-{compression}", compression=compression, segment_size=16 * 1024 * 1024
            ) as w:
                for b in batches:
                    w.append(b)
        write_jsonl(root / "peer.jsonl", batches)
        first_ns, last_ns = records[0].recv_ns, records[-1].recv_ns
        # Readers run in a process that no longer holds the written records, as replay does:
        # a large live heap would make every GC pass cost more, whichever reader is measured.
        del records, batches
        for gc_name, gc_setting in (("", contextlib.nullcontext), (" scan_gc", scan_gc)):
            with gc_setting():
                for compression in (False, True):
                    d = root / f"wal-{compression}"
                    label = f"zstd={'on' if compression else 'off'}{gc_name}"
                    secs = best_of(RUNS, lambda d=d: drain(WalReader(d).records()))
                    rows.append((f"wal records() {label}", secs, 0))
                    secs = best_of(RUNS, lambda d=d: drain(WalReader(d).wire()))
                    rows.append((f"wal wire() {label}", secs, 1))
        peer_objects = best_of(RUNS, lambda: drain(read_jsonl(root / "peer.jsonl", build=True)))
        peer_dicts = best_of(RUNS, lambda: drain(read_jsonl(root / "peer.jsonl", build=False)))
        d = root / "wal-True"
        full = best_of(RUNS, lambda: drain(WalReader(d).records()))
        lo = last_ns - (last_ns - first_ns) // 100
        seek = best_of(RUNS, lambda: drain(WalReader(d).records(lo)))
        payloads = [f.payload for f in WalReader(d).frames()]
        with scan_gc():
            c_cpu = cpu_best(lambda: drain(WalReader(d).records()), RUNS)[0]
            c_decode = cpu_best(lambda: drain(map(events.decode_batch, payloads)), RUNS)[0]
            accelerated, events._c_decode_batch = events._c_decode_batch, None
            try:
                py_cpu = cpu_best(lambda: drain(WalReader(d).records()), RUNS)[0]
                py_decode = cpu_best(lambda: drain(map(events.decode_batch, payloads)), RUNS)[0]
            finally:
                events._c_decode_batch = accelerated
    finally:
        shutil.rmtree(root)

    print(f"{n} records in frames of {BATCH}; best of {RUNS} runs")
    print(f"{'reader':<34}{'records/s':>12}  vs jsonl")
    peers = (peer_objects, peer_dicts)
    for name, secs, kind in rows:
        print(f"{name:<34}{n / secs:>12,.0f}  {peers[kind] / secs:.2f}x")
    print(f"{'jsonl -> dataclasses':<34}{n / peer_objects:>12,.0f}")
    print(f"{'jsonl -> dicts':<34}{n / peer_dicts:>12,.0f}")
    print(
        f"time-range read of the last 1% via the index: {seek * 1e3:.1f} ms "
        f"(full scan {full * 1e3:.0f} ms, {full / seek:.0f}x faster)"
    )
    print("scan_gc: the collector setting replay and verify-books read under (gc threshold 200k)")
    print(
        f"records() zstd, CPU time: {n / c_cpu:,.0f} records/s with the records built in C "
        f"({'built' if accelerated else 'NOT BUILT'}), {n / py_cpu:,.0f} with the Python "
        f"decoders ({py_cpu / c_cpu:.2f}x); target >= 3M records/s"
    )
    print(
        f"decode alone (events.decode_batch of each frame's payload), CPU time: "
        f"{n / c_decode:,.0f} records/s in C, {n / py_decode:,.0f} with the Python decoders "
        f"({py_decode / c_decode:.2f}x)"
    )
    print("target: read scan >= 1M records/s")


if __name__ == "__main__":
    main()
