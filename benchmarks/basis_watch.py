"""What the live basis watch costs the recorder, and how fast `replay arb` reads a spot +
perpetual recording.

Records: the Binance spot and USD-M simulators stepped together (one symbol each, spot on its
default streams: depth and trades; USD-M with depth, book ticker, mark price, aggTrade),
their wire messages through the real parsers, as in tests/analytics/test_basis.py.

Figures (CPU time, time.process_time, one core):
- tap: BasisTap over every record, in 64-record batches as the recorder loop hands them over,
  microseconds per record; the peer is the recorder's own BookKeeper.apply over the same records
  (the work every recorded record already pays), and the ratio tap / keeper;
- replay: replay_arb over the store those records make (written through the real StoreWriter),
  records per second.

No target is set by the issue; the figure says what turning SHRIVEN_ANALYTICS_LIVE_BASIS on
adds. Usage: python benchmarks/basis_watch.py [steps]
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry

from _cli import parser
from shriven.app.basis_tap import BasisTap
from shriven.book import BookKeeper
from shriven.events import Record, Status, StatusKind
from shriven.feeds.binance.parse import parse_depth_snapshot
from shriven.feeds.binance.streams import parse_futures_snapshot, parse_venue_message
from shriven.pipeline.queue import RecordQueue
from shriven.replay.arb import replay_arb
from shriven.sim.binance import BinanceSimulator
from shriven.wal import StoreWriter, WalOptions

T0 = 1_795_146_300_000_000_000
SYMBOL = "BTCUSDT"


def records(steps: int) -> list[Record]:
    spot = BinanceSimulator((SYMBOL,), seed=5, venue="binance")
    perp = BinanceSimulator((SYMBOL,), seed=5, venue="binance-usdm")
    out: list[Record] = [Status(T0, 1, "system", StatusKind.STARTED, "", "{}")]
    for i in range(steps):
        t = T0 + (i + 1) * 100_000_000
        if i % 5_000 == 2_000:  # a deviation now and then
            perp.shift_book(SYMBOL, 18_000)
        if i % 5_000 == 3_000:
            perp.shift_book(SYMBOL, -18_000)
        for sim, venue in ((spot, "binance"), (perp, "binance-usdm")):
            for stream, kind, text in sim.step():
                if venue == "binance" and kind in ("bookTicker", "aggTrade"):
                    continue
                rec = parse_venue_message(f'{{"stream":"{stream}","data":{text}}}', t, venue)
                if rec is not None:
                    out.append(rec)  # type: ignore[arg-type]
            if i == 0:
                body = sim.snapshot_body(SYMBOL)
                out.append(
                    parse_depth_snapshot(body, SYMBOL, t)
                    if venue == "binance"
                    else parse_futures_snapshot(body, venue, SYMBOL, t)
                )
    seq: dict[str, int] = {}
    for r in out:
        stream = "system" if type(r) is Status else getattr(r, "venue", "binance")
        seq[stream] = r.seq = seq.get(stream, 0) + 1
    return out


def cpu(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("steps", nargs="?", type=int, default=20_000, help="simulator steps")
    steps = ap.parse_args().steps
    recs = records(steps)
    n = len(recs)
    batches = [recs[i : i + 64] for i in range(0, n, 64)]
    tmp = Path(tempfile.mkdtemp())
    try:
        tap = BasisTap({SYMBOL}, 10.0, tmp, RecordQueue(maxsize=1 << 20), CollectorRegistry())
        keeper = BookKeeper()

        def run_tap() -> None:
            for b in batches:
                tap(b)

        def run_keeper() -> None:
            for r in recs:
                keeper.apply(r)

        tap_s = cpu(run_tap)
        keeper_s = cpu(run_keeper)
        print(f"records: {n:,} ({steps:,} steps of spot + USD-M {SYMBOL})")
        print(f"tap: {tap_s / n * 1e6:.2f} us per record; BookKeeper.apply (peer) "
              f"{keeper_s / n * 1e6:.2f} us: {tap_s / keeper_s:.2f}x")  # fmt: skip
        store = tmp / "market"
        writer = StoreWriter(store, WalOptions(fsync_policy="never"))
        for b in batches:
            writer.append_ticks(b)
        writer.close()
        replay_s = cpu(lambda: replay_arb(store, io.StringIO(), ZoneInfo("UTC")))
        print(f"replay arb: {n / replay_s:,.0f} records/s ({replay_s:.2f} s CPU)")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
