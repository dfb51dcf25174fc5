from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shriven.book import OrderBook
from shriven.book.orderbook import best_prices

prices = st.sampled_from([round(100 + i * 0.5, 2) for i in range(-20, 21)])
qtys = st.one_of(st.just(0.0), st.floats(min_value=0.001, max_value=1e6, allow_nan=False))
changes = st.lists(st.tuples(prices, qtys), max_size=12)
batches = st.lists(st.tuples(changes, changes), max_size=25)


def reference(batches_: list) -> tuple[list, list]:
    """A naive book: plain dicts, sorted when read."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for b, a in batches_:
        for side, levels in ((bids, b), (asks, a)):
            for p, q in levels:
                if q == 0:
                    side.pop(p, None)
                else:
                    side[p] = q
    return sorted(bids.items(), reverse=True), sorted(asks.items())


# Example budgets sized for CI: nearly all of a run's time is hypothesis drawing the nested
# lists (about 280 draws an example), not the book. Strength comes from the draws being new on
# every run: derandomize stays off even where hypothesis detects CI (its "ci" profile turns it
# on, which would try the same examples every time), so each run adds examples no earlier run
# tried, and a failure is kept in the local example database and replayed first. The edge cases
# that matter (a level removed that was never there, a price repeated in a batch, an empty
# book) have their own tests below. The budgets were 300/200/200, 44-66 s each in a suite run.
EXAMPLES = 80
FRESH = settings(deadline=None, derandomize=False)


def check_sides(book: OrderBook) -> None:
    """The layout's invariant: each side's price list is its dict's keys, sorted best last."""
    assert book.bid_keys == sorted(book.bids)
    assert book.ask_keys == sorted(book.asks, reverse=True)


@settings(FRESH, max_examples=EXAMPLES)
@given(batches, st.booleans())
def test_any_sequence_of_changes_equals_the_naive_reference(
    batches_: list, read_between: bool
) -> None:
    book = OrderBook()
    for b, a in batches_:
        book.apply(b, a)
        if read_between:
            book.top(3)
            check_sides(book)
    check_sides(book)
    ref_bids, ref_asks = reference(batches_)
    bids, asks = book.levels()
    assert bids == ref_bids
    assert asks == ref_asks
    assert book.best_bid() == (ref_bids[0] if ref_bids else None)
    assert book.best_ask() == (ref_asks[0] if ref_asks else None)
    for n in (1, 3, 100):
        assert book.top(n) == (ref_bids[:n], ref_asks[:n])
    assert list(book.iter_bids()) == ref_bids
    assert list(book.iter_asks()) == ref_asks
    assert book.depth() == (len(ref_bids), len(ref_asks))


@settings(FRESH, max_examples=EXAMPLES * 2 // 3)
@given(batches, changes, changes, batches)
def test_replace_discards_everything_before(batches_: list, b: list, a: list, after: list) -> None:
    book = OrderBook()
    for bb, aa in batches_:
        book.apply(bb, aa)
    book.replace(b, a, 42)
    check_sides(book)
    assert book.levels() == reference([(b, a)])
    assert book.update_id == 42
    for bb, aa in after:  # and changes after it land as on a book built from scratch
        book.apply(bb, aa)
    check_sides(book)
    assert book.levels() == reference([(b, a), *after])


def test_zero_quantity_removes_and_missing_zero_is_a_no_op() -> None:
    book = OrderBook([(10.0, 1.0), (9.0, 2.0)], [(11.0, 3.0)])
    n = book.apply([(10.0, 0.0), (8.0, 0.0)], [(11.0, 5.0)])
    assert n == 3
    assert book.levels() == ([(9.0, 2.0)], [(11.0, 5.0)])


def test_apply_strings_parses_binance_decimals() -> None:
    book = OrderBook()
    book.apply_strings([("0.00006547", "120.50000000")], [("0.00006560", "0.00000000")])
    assert book.levels() == ([(0.00006547, 120.5)], [])


def test_best_of_an_empty_book_is_none() -> None:
    book = OrderBook()
    assert book.best_bid() is None and book.best_ask() is None
    assert book.top(5) == ([], [])
    assert not book.is_crossed() and not book.is_locked()


@pytest.mark.parametrize(
    ("bid", "ask", "crossed", "locked"),
    [(10.0, 11.0, False, False), (11.0, 11.0, False, True), (12.0, 11.0, True, False)],
)
def test_crossed_and_locked_are_reported_not_fixed(
    bid: float, ask: float, crossed: bool, locked: bool
) -> None:
    book = OrderBook([(bid, 1.0)], [(ask, 1.0)])
    assert book.is_crossed() is crossed
    assert book.is_locked() is locked
    assert book.best_bid() == (bid, 1.0) and book.best_ask() == (ask, 1.0)


def test_books_compare_by_levels() -> None:
    a = OrderBook([(1.0, 2.0)], [(3.0, 4.0)], update_id=1)
    b = OrderBook([(1.0, 2.0)], [(3.0, 4.0)], update_id=9)
    assert a == b
    b.apply([(1.0, 2.5)], [])
    assert a != b


def test_repeated_price_in_one_batch_ends_with_the_last_change() -> None:
    book = OrderBook([(10.0, 1.0)], [])
    book.apply([(10.0, 2.0), (10.0, 0.0), (10.0, 3.0)], [])
    assert book.levels() == ([(10.0, 3.0)], [])
    book.apply([(10.0, 4.0), (10.0, 0.0)], [])
    assert book.levels() == ([], [])
    check_sides(book)


@settings(FRESH, max_examples=EXAMPLES * 2 // 3)
@given(batches)
def test_best_prices_equal_the_public_api(batches_: list) -> None:
    book = OrderBook()
    for b, a in batches_:
        book.apply(b, a)
        bid, ask = book.best_bid(), book.best_ask()
        expected = None if bid is None or ask is None else (bid[0], ask[0])
        assert best_prices(book) == expected
        assert book.is_crossed() == (expected is not None and expected[0] > expected[1])
        assert book.is_locked() == (expected is not None and expected[0] == expected[1])
    book.replace([(1.0, 1.0), (3.0, 1.0)], [(2.0, 1.0), (5.0, 1.0)])
    assert best_prices(book) == (3.0, 2.0) and book.is_crossed()


def test_the_python_reference_applies_the_levels_it_packed() -> None:
    """The path a process without the C extension takes: pack once, then apply the doubles."""
    from shriven.book.levels import py_apply_side, py_pack_levels

    side: dict[float, float] = {100.0: 1.0, 99.0: 2.0}
    keys = [99.0, 100.0]
    packed = py_pack_levels([("100.5", "3"), ("99", "0"), ("98.25", "1.5")])
    assert packed is not None
    assert py_apply_side(side, keys, packed, False) == 3
    assert side == {100.0: 1.0, 100.5: 3.0, 98.25: 1.5}
    assert keys == [98.25, 100.0, 100.5]
    assert py_pack_levels([("1", "NaN")]) is None
    assert py_pack_levels([("abc", "1")]) is None
