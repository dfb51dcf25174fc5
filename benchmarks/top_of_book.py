"""One instrument's top-of-book series: from columns (``replay.topbook.top_of_book``) beside
today's path, ``book_states`` (what ``iter_lob_states`` yields) with the best bid and ask read
from each state, on the same store in the same run.

Target (issue 14): top-of-book series of one instrument >= 2M changes/s. The store is
benchmarks/replay.py's (BTCUSDT is a third of the Binance diffs, 22% of the records). The peer
costs several us a change, so both are timed on the first PEER_RECORDS records (the ratio) and
the columns also on the whole store (the figure). The two series are compared. CPU time
(time.process_time), best of RUNS. Usage: python benchmarks/top_of_book.py [records]
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

from _cli import parser
from _walbench import cpu_best
from replay import generate
from shriven.replay.colscan import ACCELERATED
from shriven.replay.reconstruct import book_states
from shriven.replay.store import StoreReader
from shriven.replay.topbook import TopOfBook, top_of_book
from shriven.wal.gc import scan_gc

KEY = "binance:BTCUSDT"
PEER_RECORDS = 500_000
RUNS = 3


def by_states(root: Path, end_ns: int) -> list[tuple[float, float]]:
    out = []
    nan = math.nan
    for s in book_states(StoreReader(root), KEY, None, end_ns, seed=None):
        b = s.book
        out.append((b.bid_keys[-1] if b.bid_keys else nan, b.ask_keys[-1] if b.ask_keys else nan))
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("records", nargs="?", type=int, default=5_000_000, help="records")
    n = ap.parse_args().records
    root = Path(tempfile.mkdtemp(prefix="shriven-top-bench-"))
    try:
        written = generate(root / "ticks", n)
        cut = next(r for i, r in enumerate(StoreReader(root).ticks.records()) if i == PEER_RECORDS)
        with scan_gc():
            whole_s, whole = cpu_best(lambda: top_of_book(StoreReader(root), KEY), RUNS)
            part_s, part = cpu_best(
                lambda: top_of_book(StoreReader(root), KEY, None, cut.recv_ns), RUNS
            )
            peer_s, peer = cpu_best(lambda: by_states(root, cut.recv_ns), 1)
    finally:
        shutil.rmtree(root)
    assert isinstance(whole, TopOfBook) and isinstance(part, TopOfBook)
    assert isinstance(peer, list)
    assert list(zip(part.bid_price.tolist(), part.ask_price.tolist(), strict=True)) == peer
    print(f"store: {written:,} records; {KEY}; C built: {ACCELERATED}; CPU time")
    print(f"{'':<48}{'changes/s':>12}")
    print(
        f"{'columns, whole store':<48}{len(whole) / whole_s:>12,.0f}   "
        f"({len(whole):,} states, {whole_s:.2f} s)"
    )
    print(f"{f'columns, first {PEER_RECORDS:,} records':<48}{len(part) / part_s:>12,.0f}")
    print(f"{'book_states (iter_lob_states), same records':<48}{len(peer) / peer_s:>12,.0f}")
    print(
        f"columns vs book_states on the same records: {peer_s / part_s:.1f}x; series equal "
        f"({len(peer):,} states); rebuilt by the keeper: {whole.by_keeper}"
    )
    print("target: top-of-book series of one instrument >= 2M changes/s")


if __name__ == "__main__":
    main()
