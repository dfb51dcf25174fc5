"""The top-of-book series from columns equals the best bid and ask of every state book_states
yields, and the C series equals its OrderBook reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from shriven.replay.reconstruct import book_states
from shriven.replay.store import StoreReader
from shriven.replay.topbook import _series, py_top_series, top_of_book

from .synth import NIFTY_FUT, generate, record_store


def from_states(store: Path, key: str, start: int | None) -> list[tuple]:
    out = []
    for s in book_states(StoreReader(store), key, start, None, seed=None):
        b = s.book
        bid = b.bid_keys[-1] if b.bid_keys else math.nan
        ask = b.ask_keys[-1] if b.ask_keys else math.nan
        out.append(
            (s.recv_ns, bid, b.bids.get(bid, math.nan), ask, b.asks.get(ask, math.nan), s.valid)
        )
    return out


def as_rows(t) -> list[tuple]:  # type: ignore[no-untyped-def]
    return list(
        zip(
            t.recv_ns.tolist(), t.bid_price.tolist(), t.bid_qty.tolist(), t.ask_price.tolist(),
            t.ask_qty.tolist(), t.valid.tolist(), strict=True,
        )
    )  # fmt: skip


def same(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(
        x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
        for ra, rb in zip(a, b, strict=True)
        for x, y in zip(ra, rb, strict=True)
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    d = tmp_path_factory.mktemp("topbook")
    records = generate(seed=31, seconds=120, restart_at_s=70, gap_at_s=40)
    record_store(d, records)
    return d, records[len(records) // 3].recv_ns


@pytest.mark.parametrize("key", ["binance:ETHUSDT", f"kite:{NIFTY_FUT}", "binance:BTCUSDT"])
def test_series_equals_book_states(store: tuple[Path, int], key: str) -> None:
    d, middle = store
    for start in (None, middle):
        top = top_of_book(StoreReader(d), key, start)
        want = from_states(d, key, start)
        assert len(want) > 50
        assert same(as_rows(top), want)
        # BTCUSDT has a gap: the keeper rebuilds it; the others stay columnar
        assert top.by_keeper == (key == "binance:BTCUSDT")


def test_c_series_equals_the_orderbook_reference() -> None:
    rng = np.random.default_rng(5)
    rows = 4000
    sides = rng.integers(0, 2, rows).astype(np.uint8)
    prices = rng.integers(1, 60, rows).astype(np.float64) / 4
    qtys = np.where(rng.random(rows) < 0.3, 0.0, rng.integers(1, 9, rows).astype(np.float64))
    counts = rng.integers(0, 7, 800).astype(np.int64)
    counts[np.cumsum(counts) > rows] = 0
    starts = (np.cumsum(counts) - counts).astype(np.int64)
    ops = rng.integers(0, 4, 800).astype(np.uint8)
    got = _series(ops, starts, counts, sides, prices, qtys)
    want = py_top_series(ops, starts, counts, sides, prices, qtys)
    assert got.shape == want.shape and np.array_equal(got, want, equal_nan=True)
