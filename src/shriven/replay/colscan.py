"""WAL frames read into numpy columns: every record's header and every book change, no record
objects.

:func:`scan_frame` turns one frame's msgpack batch into a :class:`FrameColumns`: per record its
``type``, ``recv_ns`` and ``seq``, and what it does to a book (``kind``, ``key``, ``first_id``,
``last_id``), plus one row per level change (``level_row``, ``level_side`` 0 bid / 1 ask,
``level_price``, ``level_qty``, the doubles the book keeper applies). Book kinds:

- ``KITE`` a full-mode Kite tick of a non-index token: it replaces ``kite:<token>``'s book
  (levels with a zero price or quantity left out, price / the token's divisor); ids are ``seq``;
- ``DIFF`` a Binance spot diff (``first_id`` U, ``last_id`` u), ``SNAPSHOT`` a REST snapshot
  (both ids its ``lastUpdateId``), on ``binance:<symbol>``;
- ``GAP`` a Status ``gap`` marker for ``<venue>:<instrument>``;
- ``SLOW`` a record the columns do not carry exactly: futures depth (pu-chained), or a Binance
  level that is not a plain decimal (``[0-9]+(\\.[0-9]+)?``, at most 15 significant digits and 22
  decimals: read as mantissa / 10^k, the value ``float()`` gives). Its book must be rebuilt by
  :class:`~shriven.book.BookKeeper` from the records; the record has no level rows;
- ``NONE`` everything else.

The C version (``shriven.replay._colscan``, built by ``pip install`` where a compiler is found)
reads the msgpack bytes directly; :func:`py_scan_frame` is the pure-Python reference it is tested
against, built on the record decoder and the keeper's own level rule (``pack_levels``). A payload
the C scanner does not read (anything the record decoder would refuse, and rare odd forms such as
an id above int64) goes through the reference, which raises the record decoder's error.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import msgpack
import numpy as np

from shriven.book.levels import pack_levels
from shriven.errors import WalCorruptionError
from shriven.events import (
    KITE_SEGMENT_INDICES,
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    KiteTick,
    RecordDecodeError,
    Status,
    StatusKind,
    decode_wires,
    kite_price_divisor,
    unpack_batch,
)
from shriven.wal.reader import WalReader

__all__ = [
    "ACCELERATED",
    "DIFF",
    "GAP",
    "KITE",
    "NONE",
    "SLOW",
    "SNAPSHOT",
    "FrameColumns",
    "py_scan_frame",
    "scan_frame",
    "scan_wal",
]

NONE: Final = 0
KITE: Final = 1
DIFF: Final = 2
SNAPSHOT: Final = 3
GAP: Final = 4
SLOW: Final = 5

_PLAIN: Final = re.compile(r"[0-9]+(\.[0-9]+)?\Z")
_LIMIT: Final = 1 << 53


@dataclass(slots=True)
class FrameColumns:
    """One frame's records as columns (see the module docstring). ``key`` indexes ``keys``."""

    types: np.ndarray  # uint8
    recv_ns: np.ndarray  # int64
    seq: np.ndarray  # int64
    kind: np.ndarray  # uint8
    key: np.ndarray  # int32, -1 for none
    first_id: np.ndarray  # int64
    last_id: np.ndarray  # int64
    level_row: np.ndarray  # int32: the record's index in the frame
    level_side: np.ndarray  # uint8
    level_price: np.ndarray  # float64
    level_qty: np.ndarray  # float64
    keys: list[str]

    def __len__(self) -> int:
        return len(self.types)


def _plain(text: str) -> bool:
    if not _PLAIN.match(text) or len(text) > 40:
        return False
    digits = text.replace(".", "").lstrip("0")
    return len(digits) <= 15 and len(text.partition(".")[2]) <= 22


def _binance_rows(bids: tuple, asks: tuple) -> list[tuple[int, float, float]] | None:
    out: list[tuple[int, float, float]] = []
    for side, levels in ((0, bids), (1, asks)):
        packed = pack_levels(levels)
        if packed is None or not all(_plain(p) and _plain(q) for p, q in levels):
            return None
        values = array("d", packed)
        out.extend((side, values[i], values[i + 1]) for i in range(0, len(values), 2))
    return out


def _kite_rows(tick: KiteTick) -> list[tuple[int, float, float]] | None:
    div = kite_price_divisor(tick.instrument_token)
    out: list[tuple[int, float, float]] = []
    for side, levels in ((0, tick.bids), (1, tick.asks)):
        for price, qty, orders in levels:
            if type(price) is not int or type(qty) is not int or type(orders) is not int:
                return None
            if qty and price:
                if abs(price) >= _LIMIT or abs(qty) >= _LIMIT:
                    return None
                out.append((side, price / div, float(qty)))
    return out


def _int64(*values: object) -> None:
    """Header fields and update ids become int64 columns: anything else is not read as one."""
    for v in values:
        if type(v) is not int or not -(1 << 63) <= v < 1 << 63:
            raise RecordDecodeError(f"expected a 64-bit msgpack integer, found {v!r}")


def py_scan_frame(payload: bytes, only: str | None = None) -> FrameColumns:
    """The reference: the records decoded (raising as the record reader raises), then each read
    with the keeper's rules. ``only``: a book key; other books' records get kind NONE."""
    records = decode_wires(unpack_batch(payload))
    n = len(records)
    kinds = [NONE] * n
    keyix = [-1] * n
    first = [0] * n
    last = [0] * n
    rows: list[int] = []
    sides: list[int] = []
    prices: list[float] = []
    qtys: list[float] = []
    names: dict[str, int] = {}
    for i, r in enumerate(records):
        t = type(r)
        _int64(r.recv_ns, r.seq)
        key = ""
        levels: list[tuple[int, float, float]] | None = []
        if t is BinanceDepth or t is BinanceDepthSnapshot:
            key = "binance:" + r.symbol  # type: ignore[union-attr]
            levels = _binance_rows(r.bids, r.asks)  # type: ignore[union-attr]
            if t is BinanceDepth:
                kinds[i] = DIFF
                first[i], last[i] = r.first_update_id, r.last_update_id  # type: ignore[union-attr]
            else:
                kinds[i] = SNAPSHOT
                first[i] = last[i] = r.last_update_id  # type: ignore[union-attr]
            _int64(first[i], last[i])
        elif t is KiteTick:
            _int64(r.instrument_token)  # type: ignore[union-attr]
            if r.mode == "full" and r.instrument_token & 0xFF != KITE_SEGMENT_INDICES:  # type: ignore[union-attr]
                key = f"kite:{r.instrument_token}"  # type: ignore[union-attr]
                kinds[i] = KITE
                first[i] = last[i] = r.seq
                levels = _kite_rows(r)  # type: ignore[arg-type]
        elif t is Status:
            if r.kind == StatusKind.GAP:  # type: ignore[union-attr]
                key = f"{r.venue}:{r.instrument}"  # type: ignore[union-attr]
                kinds[i] = GAP
        elif t is BinanceFuturesDepth or t is BinanceFuturesDepthSnapshot:
            key = f"{r.venue}:{r.symbol}"  # type: ignore[union-attr]
            kinds[i] = SLOW
        if key and only is not None and key != only:
            kinds[i] = NONE
            first[i] = last[i] = 0
            continue
        if key:
            keyix[i] = names.setdefault(key, len(names))
        if levels is None:
            kinds[i] = SLOW
            first[i] = last[i] = 0
        elif levels:
            for side, p, q in levels:
                rows.append(i)
                sides.append(side)
                prices.append(p)
                qtys.append(q)
    return FrameColumns(
        np.array([r.TYPE for r in records], dtype=np.uint8),
        np.array([r.recv_ns for r in records], dtype=np.int64),
        np.array([r.seq for r in records], dtype=np.int64),
        np.array(kinds, dtype=np.uint8),
        np.array(keyix, dtype=np.int32),
        np.array(first, dtype=np.int64),
        np.array(last, dtype=np.int64),
        np.array(rows, dtype=np.int32),
        np.array(sides, dtype=np.uint8),
        np.array(prices, dtype=np.float64),
        np.array(qtys, dtype=np.float64),
        list(names),
    )


try:
    from shriven.replay._colscan import scan_frame as _c_scan  # type: ignore[import-not-found]

    ACCELERATED = True
except ImportError:  # the optional C extension was not built: the reference does the work
    _c_scan = None
    ACCELERATED = False

_DTYPES: Final = (
    np.uint8, np.int64, np.int64, np.uint8, np.int32, np.int64, np.int64,
    np.int32, np.uint8, np.float64, np.float64,
)  # fmt: skip


def scan_frame(payload: bytes, only: str | None = None) -> FrameColumns:
    """One frame payload as columns: the C scanner where built and able, else the reference.
    ``only``: a book key (``binance:BTCUSDT``); records of other books get kind NONE and no
    level rows, their levels not read (a third of the work when a store holds three books)."""
    if _c_scan is not None:
        out = _c_scan(payload, only)
        if out is not None:
            # an empty column comes back as None (no buffer was ever allocated for it)
            arrays = [
                np.frombuffer(b or b"", dtype=d) for b, d in zip(out[1:12], _DTYPES, strict=True)
            ]
            return FrameColumns(*arrays, out[12])
    return py_scan_frame(payload, only)


def _select(cols: FrameColumns, keep: np.ndarray) -> FrameColumns:
    """The records where ``keep`` is True, their level rows renumbered."""
    new_index = np.cumsum(keep, dtype=np.int64) - 1
    lkeep = keep[cols.level_row]
    return FrameColumns(
        cols.types[keep],
        cols.recv_ns[keep],
        cols.seq[keep],
        cols.kind[keep],
        cols.key[keep],
        cols.first_id[keep],
        cols.last_id[keep],
        new_index[cols.level_row[lkeep]].astype(np.int32),
        cols.level_side[lkeep],
        cols.level_price[lkeep],
        cols.level_qty[lkeep],
        cols.keys,
    )


def scan_wal(
    reader: WalReader,
    start_ns: int | None = None,
    end_ns: int | None = None,
    only: str | None = None,
) -> Iterator[FrameColumns]:
    """Each frame of ``reader``'s WAL as columns, in write order, only records with ``start_ns <=
    recv_ns < end_ns``; damage is handled as ``reader.records()`` handles it (a strict reader
    raises :class:`~shriven.errors.WalCorruptionError`, a tolerant one skips and counts)."""
    lo = -(1 << 63) if start_ns is None else start_ns
    hi = 1 << 63 if end_ns is None else end_ns
    for frame in reader.frames(start_ns, end_ns):
        try:
            cols = scan_frame(frame.payload, only)
            if len(cols) != frame.count:
                raise RecordDecodeError(
                    f"frame says {frame.count} records, payload holds {len(cols)}"
                )
        except (ValueError, msgpack.UnpackException) as exc:  # RecordDecodeError is a ValueError
            if reader.strict:
                raise WalCorruptionError(str(frame.path), frame.offset, str(exc)) from None
            reader.stats.skip(frame.path, frame.offset, frame.length, str(exc))
            continue
        reader.stats.records_read += len(cols)
        if not (lo <= frame.min_ns and frame.max_ns < hi):
            cols = _select(cols, (cols.recv_ns >= lo) & (cols.recv_ns < hi))
        yield cols
