"""Every book of a store rebuilt: from columns (``replay.allbooks.every_book``) beside today's
record-by-record path (a BookKeeper fed ``StoreReader.ticks.records()``), measured in the same run.

Target (issue 14): reconstruction of every book, 5M-record store, >= 3M book changes/s (book
changes: diffs applied, REST snapshots, Kite full ticks, as the keeper counts them). The store is
benchmarks/replay.py's (65% Binance diffs over three symbols, 10% trades, 25% Kite full ticks over
20 instruments, zstd frames of 5,000). The record-by-record peer costs about 3 us a change, so it
reads the first PEER_RECORDS records and the columns are timed on that prefix too (the ratio) and
on the whole store (the figure). Both answers are compared book by book. CPU time
(time.process_time), best of RUNS. Usage: python benchmarks/reconstruct_all.py [records]
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from _cli import parser
from _walbench import cpu_best
from replay import generate
from shriven.book import BookKeeper
from shriven.replay.allbooks import EveryBook, every_book
from shriven.replay.colscan import ACCELERATED
from shriven.replay.store import StoreReader
from shriven.wal.gc import scan_gc

PEER_RECORDS = 500_000
RUNS = 3


def by_keeper(root: Path, end_ns: int) -> tuple[int, dict]:
    keeper = BookKeeper()
    for r in StoreReader(root).ticks.records(None, end_ns):
        keeper.apply(r)
    st = keeper.stats
    books = {k: b.levels() for k, b in keeper.valid_books().items()}
    return st.applied + st.snapshots + st.kite_depth, books


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("records", nargs="?", type=int, default=5_000_000, help="records")
    n = ap.parse_args().records
    root = Path(tempfile.mkdtemp(prefix="shriven-allbooks-bench-"))
    try:
        written = generate(root / "ticks", n)
        cut = next(r for i, r in enumerate(StoreReader(root).ticks.records()) if i == PEER_RECORDS)
        end_ns = cut.recv_ns
        with scan_gc():
            whole_s, whole = cpu_best(lambda: every_book(StoreReader(root)), RUNS)
            part_s, part = cpu_best(lambda: every_book(StoreReader(root), end_ns), RUNS)
            peer_s, (peer_changes, peer_books) = cpu_best(lambda: by_keeper(root, end_ns), 1)
    finally:
        shutil.rmtree(root)
    assert isinstance(whole, EveryBook) and isinstance(part, EveryBook)
    assert part.books == peer_books and part.changes == peer_changes, "answers differ"
    print(f"store: {written:,} records; C scanner built: {ACCELERATED}; CPU time")
    print(f"{'':<52}{'changes/s':>12}{'records/s':>13}")
    print(
        f"{'columns, whole store':<52}{whole.changes / whole_s:>12,.0f}"
        f"{whole.records / whole_s:>13,.0f}   ({whole.changes:,} changes, {whole_s:.2f} s)"
    )
    print(
        f"{f'columns, first {part.records:,} records':<52}{part.changes / part_s:>12,.0f}"
        f"{part.records / part_s:>13,.0f}"
    )
    print(
        f"{'BookKeeper over records(), same records':<52}{peer_changes / peer_s:>12,.0f}"
        f"{part.records / peer_s:>13,.0f}"
    )
    print(
        f"columns vs record by record on the same records: {peer_s / part_s:.1f}x; books equal: "
        f"{len(peer_books)}; rebuilt by the keeper: {whole.by_keeper or 'none'}"
    )
    print("target: every book, 5M-record store, >= 3M book changes/s")


if __name__ == "__main__":
    main()
