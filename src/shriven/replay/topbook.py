"""One book's best bid and ask after every change, as numpy columns: the top-of-book series of
:func:`~shriven.replay.iter_lob_states` without a Python object per state.

:func:`top_of_book` reads the ticks WAL as columns (:mod:`shriven.replay.colscan`), finds the
book's runs with the sync rules of :mod:`shriven.replay.allbooks`, and applies its level rows
in C (``shriven.replay._colscan.top_series``: each side a sorted array with the best last) or,
where that was not built, through :class:`~shriven.book.OrderBook` (the reference). One value
per state that ``book_states`` would yield: a Kite full tick, a Binance snapshot (with the
buffered diffs it releases), each applied diff. A book the columns cannot rebuild (see
allbooks) is read through ``book_states`` itself. The book is rebuilt from the start of the
store, not from a LOB snapshot: the two agree wherever ``wal verify-books`` finds no difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from shriven.book import OrderBook
from shriven.replay.allbooks import binance_runs, read_events
from shriven.replay.colscan import KITE, SLOW
from shriven.replay.reconstruct import book_states
from shriven.replay.store import StoreReader

__all__ = ["TopOfBook", "py_top_series", "top_of_book"]

REPLACE: Final = 1  # step op bits: empty the book first
EMIT: Final = 2  # a state after the step


@dataclass(slots=True)
class TopOfBook:
    """The best bid and ask (price, quantity; NaN for an empty side) after each change."""

    recv_ns: np.ndarray  # int64
    bid_price: np.ndarray  # float64
    bid_qty: np.ndarray
    ask_price: np.ndarray
    ask_qty: np.ndarray
    valid: np.ndarray  # bool: the book was in sync with the venue
    by_keeper: bool  # read through book_states (the columns could not rebuild this book)

    def __len__(self) -> int:
        return len(self.recv_ns)


_NAN: Final = float("nan")


def _top(book: OrderBook) -> tuple[float, float, float, float]:
    bid = book.best_bid() or (_NAN, _NAN)
    ask = book.best_ask() or (_NAN, _NAN)
    return (*bid, *ask)


def py_top_series(
    ops: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    sides: np.ndarray,
    prices: np.ndarray,
    qtys: np.ndarray,
) -> np.ndarray:
    """The reference of the C ``top_series``: (emitted steps, 4) best bid price, qty, best ask
    price, qty after each step that has the EMIT bit."""
    book = OrderBook()
    out: list[tuple[float, float, float, float]] = []
    for op, a, n in zip(ops.tolist(), starts.tolist(), counts.tolist(), strict=True):
        cut = slice(a, a + n)
        rows = list(zip(sides[cut].tolist(), prices[cut].tolist(), qtys[cut].tolist(), strict=True))
        if op & REPLACE:
            book = OrderBook()
        book.apply([(p, q) for s, p, q in rows if s == 0], [(p, q) for s, p, q in rows if s])
        if op & EMIT:
            out.append(_top(book))
    return np.array(out, dtype=np.float64).reshape(-1, 4)


try:
    from shriven.replay._colscan import top_series as _c_top  # type: ignore[import-not-found]
except ImportError:  # the optional C extension was not built
    _c_top = None


def _series(*columns: np.ndarray) -> np.ndarray:
    if _c_top is not None:
        return np.frombuffer(_c_top(*columns), dtype=np.float64).reshape(-1, 4)
    return py_top_series(*columns)


def top_of_book(
    reader: StoreReader, key: str, start_ns: int | None = None, end_ns: int | None = None
) -> TopOfBook:
    """``key``'s best bid and ask after each change received in ``[start_ns, end_ns)``."""
    st = read_events(reader, end_ns, key)
    ids = [i for i, name in enumerate(st.keys) if name == key]
    ev = np.flatnonzero(st.key == ids[0]) if ids else np.zeros(0, np.int64)
    lo = -(1 << 63) if start_ns is None else start_ns
    steps: list[np.ndarray] = []
    ops: list[np.ndarray] = []
    when: list[np.ndarray] = []
    kinds = st.kind[ev]
    if key.startswith("kite:") and not (kinds == SLOW).any():
        ticks = ev[kinds == KITE]
        steps.append(ticks)
        ops.append(np.full(len(ticks), REPLACE | EMIT, np.uint8))
        when.append(st.recv[ticks])
    elif key.startswith("binance:") and (runs := binance_runs(st, ev)) is not None:
        for run in runs:
            # the snapshot and the diffs it releases are one state, at the snapshot's time
            head = np.concatenate([[run.snapshot], run.released]).astype(np.int64)
            head_ops = np.zeros(len(head), np.uint8)
            head_ops[0] |= REPLACE
            head_ops[-1] |= EMIT
            steps += [head, run.applied]
            ops += [head_ops, np.full(len(run.applied), EMIT, np.uint8)]
            when += [st.recv[[run.snapshot]], st.recv[run.applied]]
    else:
        return _by_states(reader, key, start_ns, end_ns)
    if not steps:
        empty = np.zeros(0)
        return TopOfBook(
            empty.astype(np.int64), empty, empty, empty, empty, empty.astype(bool), False
        )
    step_ev = np.concatenate(steps).astype(np.int64)
    step_ops = np.concatenate(ops)
    recv = np.concatenate(when)
    # states before start_ns are applied, not emitted
    emitted = np.flatnonzero(step_ops & EMIT)
    early = emitted[recv < lo]
    step_ops[early] &= ~np.uint8(EMIT)
    top = _series(
        step_ops,
        st.row_start[step_ev],
        st.row_count[step_ev],
        st.side,
        st.price,
        st.qty,
    )
    recv = recv[recv >= lo]
    return TopOfBook(
        recv, top[:, 0].copy(), top[:, 1].copy(), top[:, 2].copy(), top[:, 3].copy(),
        np.ones(len(recv), bool), False,
    )  # fmt: skip


def _by_states(
    reader: StoreReader, key: str, start_ns: int | None, end_ns: int | None
) -> TopOfBook:
    recv: list[int] = []
    tops: list[tuple[float, float, float, float]] = []
    valid: list[bool] = []
    for state in book_states(reader, key, start_ns, end_ns, seed=None):
        tops.append(_top(state.book))
        recv.append(state.recv_ns)
        valid.append(state.valid)
    arr = np.array(tops, dtype=np.float64).reshape(-1, 4)
    return TopOfBook(
        np.array(recv, dtype=np.int64), arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(),
        arr[:, 3].copy(), np.array(valid, dtype=bool), True,
    )  # fmt: skip
