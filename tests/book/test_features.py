from __future__ import annotations

import pytest

from shriven.book import OrderBook, features


def test_features_of_a_hand_computed_book() -> None:
    book = OrderBook(
        bids=[(100.0, 3.0), (99.9, 5.0), (99.0, 10.0)],
        asks=[(100.2, 1.0), (100.3, 4.0), (101.0, 7.0)],
    )
    f = features(book, n=2, band_bps=10.0)
    assert f.best_bid == 100.0 and f.best_bid_qty == 3.0
    assert f.best_ask == 100.2 and f.best_ask_qty == 1.0
    assert f.spread == pytest.approx(0.2)
    assert f.mid == pytest.approx(100.1)
    # (100 * 1 + 100.2 * 3) / (3 + 1) = 400.6 / 4
    assert f.microprice == pytest.approx(100.15)
    assert f.imbalance == pytest.approx((3 - 1) / 4)
    # best 2 per side: bids 3 + 5 = 8, asks 1 + 4 = 5
    assert f.imbalance_n == pytest.approx((8 - 5) / 13)
    # band 10 bp of 100.1 = 0.1001: bids >= 99.9999 -> 100.0 only; asks <= 100.2001 -> 100.2 only
    assert f.bid_depth_band == pytest.approx(3.0)
    assert f.ask_depth_band == pytest.approx(1.0)
    assert not f.crossed and not f.locked


def test_wider_band_takes_more_levels() -> None:
    book = OrderBook(
        bids=[(100.0, 3.0), (99.9, 5.0), (99.0, 10.0)], asks=[(100.2, 1.0), (101.0, 7.0)]
    )
    f = features(book, band_bps=50.0)  # 0.5005 around 100.1: bids >= 99.5995, asks <= 100.6005
    assert f.bid_depth_band == pytest.approx(8.0)
    assert f.ask_depth_band == pytest.approx(1.0)


def test_one_sided_book_has_no_mid() -> None:
    f = features(OrderBook(bids=[(5.0, 2.0)]))
    assert f.best_bid == 5.0 and f.best_ask is None
    assert f.mid is None and f.spread is None and f.microprice is None and f.imbalance is None
    assert f.imbalance_n == 1.0


def test_empty_book_has_no_features() -> None:
    f = features(OrderBook())
    assert f.best_bid is None and f.imbalance_n is None and not f.crossed


def test_crossed_book_is_flagged_with_negative_spread() -> None:
    f = features(OrderBook(bids=[(10.5, 1.0)], asks=[(10.0, 1.0)]))
    assert f.crossed and f.spread == pytest.approx(-0.5)
