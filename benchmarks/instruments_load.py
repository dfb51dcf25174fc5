"""Kite instrument cache load time for a ~100k-row dump, against parsing the CSV with
kiteconnect's own ``_parse_instruments`` (what a script without a cache does) in the same run.

Target: loading the verified cache (read, sha256 check, JSON decode, typed rows) well under 1 s.
Also prints the InstrumentTable index build and one build_plan, which commands do after loading.

    python benchmarks/instruments_load.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from kiteconnect import KiteConnect

from shriven.feeds.kite.instruments import load_cache, parse_instruments_csv, save_cache, to_csv
from shriven.sim.kite_instruments import DEFAULT_INDICES, IndexSpec, generate_instruments
from shriven.universe import InstrumentTable, build_plan

TARGET_SECONDS = 1.0
TODAY = date(2026, 11, 27)


def big_table() -> list:
    """The four indices plus enough stock-like underlyings (3 futures, 3 monthly chains of 121
    strikes) to reach about 100k rows, the size of the real dump."""
    stocks = [
        IndexSpec(
            f"STOCK{i:03d}", f"STOCK{i:03d}", (5_000 + i) << 8 | 9, 1_000.0 + i, 10, 500, False
        )
        for i in range(132)
    ]
    return generate_instruments(TODAY, (*DEFAULT_INDICES, *stocks))


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rows = big_table()
    text = to_csv(rows)
    raw = text.encode()
    with tempfile.TemporaryDirectory() as d:
        cache = Path(d)
        save_cache(cache, rows, "benchmark", datetime.now(UTC))
        size = (cache / "instruments" / "instruments.json").stat().st_size
        assert load_cache(cache)[0] == rows
        ours = timed(lambda: load_cache(cache), args.repeat)
    csv_ours = timed(lambda: parse_instruments_csv(text), max(1, args.repeat // 2))
    peer = timed(lambda: KiteConnect("bench")._parse_instruments(raw), 1)
    table_build = timed(lambda: InstrumentTable(rows), args.repeat)
    table = InstrumentTable(rows)
    as_of = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
    plan_time = timed(lambda: build_plan(table, "NIFTY 50", 25_000, as_of=as_of), args.repeat)

    print(f"rows: {len(rows)}, CSV {len(raw) / 1e6:.1f} MB, cache {size / 1e6:.1f} MB")
    target_ms = TARGET_SECONDS * 1000
    print(
        f"load verified cache:                {ours * 1000:8.1f} ms (target < {target_ms:.0f} ms)"
    )
    print(f"parse CSV (shriven, strict):        {csv_ours * 1000:8.1f} ms")
    print(f"parse CSV (kiteconnect, the peer):  {peer * 1000:8.1f} ms")
    print(f"cache load vs kiteconnect parse:    {peer / ours:8.1f}x faster")
    print(f"index build (InstrumentTable):      {table_build * 1000:8.1f} ms")
    print(f"build_plan NIFTY 50 (45 instr.):    {plan_time * 1000:8.2f} ms")
    print("PASS" if ours < TARGET_SECONDS else "FAIL: cache load over target")


if __name__ == "__main__":
    main()
