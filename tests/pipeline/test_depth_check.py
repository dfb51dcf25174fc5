"""The recorder's sanity check of Binance diffs takes the books' verdict on every level instead
of reading the first level of each side again."""

from __future__ import annotations

import time
from pathlib import Path

from shriven.app.startup import wal_options
from shriven.events import BinanceDepth, BinanceDepthSnapshot
from shriven.pipeline.daemon import Pipeline
from shriven.wal import read_records

from .test_writer import ListFeed, config, run_until


async def test_a_bad_level_anywhere_in_a_diff_is_counted_and_the_diff_is_kept(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    t0 = time.time_ns()
    snap = BinanceDepthSnapshot(t0, 1, "BTCUSDT", 10, (("100.0", "1.0"),), (("101.0", "1.0"),))
    good = BinanceDepth(t0 + 1, 2, "BTCUSDT", 11, 11, 1, (("100.0", "2.0"),), ())
    # past the schema only from an older store or a bug: the third bid is not a number
    bad_bids = (("99.0", "1.0"), ("98.0", "1.0"), ("NaN", "1.0"))
    bad = BinanceDepth(t0 + 2, 3, "BTCUSDT", 12, 12, 1, bad_bids, ())
    reversed_ids = BinanceDepth(t0 + 3, 4, "BTCUSDT", 14, 13, 1, (), (("101.0", "3.0"),))
    p = Pipeline(cfg, wal=wal_options(cfg), health_port=None)
    feed = ListFeed(p, [snap, good, bad, reversed_ids])
    p.add_feed(feed)
    await run_until(p, feed)
    assert p.stats.invalid_by_kind == {"binance_bad_level": 1, "binance_update_ids_reversed": 1}
    assert p.books.stats.rejected == 1
    assert p.books.book("binance:BTCUSDT").bids == {100.0: 2.0}  # type: ignore[union-attr]
    got = list(read_records(cfg.data_dir / "ticks"))
    assert bad in got and reversed_ids in got  # kept as received
