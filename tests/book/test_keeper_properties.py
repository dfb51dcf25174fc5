"""Soundness of the keeper under any interleaving: whenever it calls a book valid, that book is
exactly the venue's book at the book's update id, whatever diffs were lost or snapshots stale."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shriven.book import BookKeeper
from shriven.events import BinanceDepth, BinanceDepthSnapshot, Record

KEY = "binance:T"


@st.composite
def venue_story(draw: st.DrawFn) -> tuple[list[Record], dict[int, dict]]:
    """A venue's diff stream for one symbol, what a client received of it (some diffs lost),
    and REST snapshots taken at random moments (possibly stale) spliced in."""
    books: dict[int, dict] = {}
    book: dict[tuple[str, int], int] = {}
    uid = draw(st.integers(1, 50))
    books[uid] = dict(book)
    records: list[Record] = []
    for _ in range(draw(st.integers(1, 40))):
        action = draw(st.sampled_from(["diff", "diff", "diff", "lost", "snapshot"]))
        if action == "snapshot":
            at = draw(st.sampled_from(sorted(books)))  # any id seen so far: stale or current
            levels = books[at]
            records.append(
                BinanceDepthSnapshot(
                    0,
                    0,
                    "T",
                    at,
                    tuple((str(p), str(q)) for (s, p), q in levels.items() if s == "b"),
                    tuple((str(p), str(q)) for (s, p), q in levels.items() if s == "a"),
                )
            )
            continue
        changes = draw(
            st.dictionaries(
                st.tuples(st.sampled_from("ba"), st.integers(1, 6)), st.integers(0, 3), max_size=4
            )
        )
        first = uid + 1
        uid = first + draw(st.integers(0, 2))
        for k, q in changes.items():
            if q:
                book[k] = q
            else:
                book.pop(k, None)
        books[uid] = dict(book)
        if action == "diff":
            records.append(
                BinanceDepth(
                    0,
                    0,
                    "T",
                    first,
                    uid,
                    0,
                    tuple((str(p), str(q)) for (s, p), q in changes.items() if s == "b"),
                    tuple((str(p), str(q)) for (s, p), q in changes.items() if s == "a"),
                )
            )
    return records, books


@settings(max_examples=150, deadline=None)
@given(venue_story())
def test_a_valid_book_is_always_the_true_book_at_its_update_id(story: tuple) -> None:
    records, books = story
    keeper = BookKeeper()
    for rec in records:
        keeper.apply(rec)
        if not keeper.is_valid(KEY):
            continue
        book = keeper.book(KEY)
        truth = books[book.update_id]
        bids = sorted(
            ((float(p), float(q)) for (s, p), q in truth.items() if s == "b"), reverse=True
        )
        asks = sorted((float(p), float(q)) for (s, p), q in truth.items() if s == "a")
        assert book.levels() == (bids, asks)
    # A snapshot at the venue's current id always brings the book back: the property is then
    # checked on at least one valid state per story, never vacuously.
    now = max(books)
    keeper.apply(
        BinanceDepthSnapshot(
            0,
            0,
            "T",
            now,
            tuple((str(p), str(q)) for (s, p), q in books[now].items() if s == "b"),
            tuple((str(p), str(q)) for (s, p), q in books[now].items() if s == "a"),
        )
    )
    assert keeper.is_valid(KEY) and keeper.book(KEY).update_id == now
    truth = books[now]
    bids = sorted(((float(p), float(q)) for (s, p), q in truth.items() if s == "b"), reverse=True)
    asks = sorted((float(p), float(q)) for (s, p), q in truth.items() if s == "a")
    assert keeper.book(KEY).levels() == (bids, asks)
    # And the diff that continues it keeps it valid and applied: a keeper that dropped every
    # book on its next diff would otherwise pass, its states after diffs all invalid.
    keeper.apply(BinanceDepth(0, 0, "T", now + 1, now + 1, 0, (("9", "7"),), ()))
    assert keeper.is_valid(KEY) and keeper.book(KEY).update_id == now + 1
    assert keeper.book(KEY).levels() == (sorted([*bids, (9.0, 7.0)], reverse=True), asks)
