"""Shared by the WAL and replay benchmarks: the records, the JSON-lines peer, the timers."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from shriven.events import (
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceTrade,
    BookSnapshot,
    KiteTick,
    Record,
    Status,
)
from shriven.sim.samples import sample_records

TYPES = {
    cls.__name__: cls
    for cls in (KiteTick, BinanceTrade, BinanceDepth, BinanceDepthSnapshot, BookSnapshot, Status)
}
FIELDS = {
    cls: [f.name for f in dataclasses.fields(cls) if f.name != "TYPE"] for cls in TYPES.values()
}


def make_records(n: int) -> list[Record]:
    return list(sample_records(n, seed=42))


def to_json_line(r: Record) -> str:
    d = {name: getattr(r, name) for name in FIELDS[type(r)]}
    d["type"] = type(r).__name__
    return json.dumps(d, separators=(",", ":"))


def write_jsonl(path: Path, batches: list[list[Record]]) -> int:
    """The common recorder: one JSON object per line, buffered file, one write per batch."""
    size = 0
    with open(path, "w", encoding="utf-8") as f:
        for batch in batches:
            text = "\n".join(map(to_json_line, batch)) + "\n"
            f.write(text)
            size += len(text)
    return size


def _from_dict(d: dict) -> Record:
    cls = TYPES[d.pop("type")]
    for side in ("bids", "asks"):
        if side in d:
            d[side] = tuple(map(tuple, d[side]))
    return cls(**d)


def read_jsonl(path: Path, build: bool) -> Iterator[object]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            yield _from_dict(d) if build else d


def best_of(runs: int, fn: Callable[[], object]) -> float:
    """Fastest wall time of ``runs`` calls (the least disturbed by a busy machine)."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cpu_best(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    """Least CPU time (time.process_time) of ``runs`` calls, and the last call's result: CPU
    time moves less than wall time on a machine other jobs share."""
    best, result = float("inf"), None
    for _ in range(runs):
        t0 = time.process_time()
        result = fn()
        best = min(best, time.process_time() - t0)
    return best, result
