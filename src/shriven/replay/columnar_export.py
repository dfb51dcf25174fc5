"""Replay to Parquet and Arrow a column at a time: no record object, no dict row, no Decimal per
value (``export.write_parquet``'s path spent 150 µs a record there, benchmarks/replay_parquet.py).

Each frame's msgpack wire tuples (events.py) are grouped by record type and transposed; a group
becomes Arrow arrays of the export schema (``export._schema``) in a few C-level calls: Binance
decimal text cast to decimal128(38, 8) by Arrow, Kite wire integers scaled by their token's
divisor in numpy, ``time`` the receive nanoseconds with the zone as timestamp metadata. The
rows then go out in replay order by the same sliding-window sort as
:func:`shriven.replay.ordering.reorder` (its sort points, cuts and late count reproduced on the
key columns), and records the schema refuses are dropped as :class:`RefusedFilter` drops them.

The output equals the record path's in content (tests/replay/test_columnar_export.py compares
the tables). Anything this path does not read plainly takes the record path's own code: a frame
whose records do not pass the type checks is decoded by the record decoder (which raises for a
damaged one, handled as ``WalReader.records`` handles it), and a group with a value outside the
plain forms (a decimal with more than 8 places, a Kite price past int64 once scaled) is
converted record by record by ``export``'s cells, giving the same values or the same error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain
from operator import itemgetter
from typing import IO, Final
from zoneinfo import ZoneInfo

import msgpack
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shriven.errors import ReplayError, WalCorruptionError
from shriven.events import (
    KITE_MODES,
    KITE_SEGMENT_BCD,
    KITE_SEGMENT_CDS,
    KITE_SEGMENT_NCO,
    REQUIRED_FIELDS,
    WIRE_VERSION,
    decode_wire,
    decode_wires,
    unpack_batch,
)
from shriven.feeds.binance.parse import record_ok
from shriven.replay import export
from shriven.replay.ordering import DEFAULT_WINDOW_NS, OrderStats, ProgressLine
from shriven.replay.rows import COLUMNS, TYPE_NAMES, record_row
from shriven.replay.select import KINDS, RefusedFilter, Selection
from shriven.replay.store import StoreReader
from shriven.wal.gc import paused_gc
from shriven.wal.reader import _check_count  # the frame-count rule of WalReader's reads

__all__ = ["write_columnar", "write_file"]

_MIN_SORT_BATCH: Final = 16_384  # ordering.reorder's
_CHUNK_ROWS: Final = 16_384  # frames gathered before their groups become Arrow arrays
_OUT_ROWS: Final = 65_536  # rows per written batch, as export's
_NAMES_OF_TYPE: Final = {t.TYPE: name for t, name in TYPE_NAMES.items()}
_TYPE_OF_CODE: Final = {t.TYPE: t for t in TYPE_NAMES}
_FIXED_STREAM: Final = {1: "kite", 2: "binance", 3: "binance", 4: "binance"}
# Arrow's RE2 form of feeds.binance.parse.DECIMAL_PATTERN (RE2's $ is the end of the text)
_SCHEMA_DECIMAL: Final = r"^[0-9]{1,20}(\.[0-9]{1,20})?$"
# text Arrow's cast reads exactly as Decimal() does, within decimal128(38, 8); "" is null
_PLAIN_DECIMAL: Final = r"^(-?[0-9]{1,30}(\.[0-9]{1,8})?)?$"
_SCALE: Final = export.PRICE_SCALE
_KITE_PRICE_LIMIT: Final = (1 << 63) // 10**6  # a wire price times 10^(8 - 2) stays in int64
_QTY_LIMIT: Final = (1 << 63) // 10**_SCALE

# (column, wire position, kind) per record type after recv_ns and seq; kinds: i int64, s str,
# d decimal text, b bool, L Binance levels. venue/instrument/symbol/stream are added by type.
_I, _S, _D, _B, _L = "i", "s", "d", "b", "L"
_LAYOUTS: Final[dict[int, tuple[tuple[str, int, str], ...]]] = {
    2: (("trade_id", 5, _I), ("price", 6, _D), ("quantity", 7, _D), ("trade_time", 8, _I),
        ("event_time", 9, _I), ("buyer_is_maker", 10, _B)),
    3: (("first_update_id", 5, _I), ("last_update_id", 6, _I), ("event_time", 7, _I),
        ("bids", 8, _L), ("asks", 9, _L)),
    4: (("last_update_id", 5, _I), ("bids", 6, _L), ("asks", 7, _L)),
    6: (("kind", 5, _S), ("instrument", 6, _S), ("detail", 7, _S)),
    7: (("first_update_id", 6, _I), ("last_update_id", 7, _I), ("prev_update_id", 8, _I),
        ("event_time", 9, _I), ("transaction_time", 10, _I), ("bids", 11, _L), ("asks", 12, _L)),
    8: (("last_update_id", 6, _I), ("event_time", 7, _I), ("transaction_time", 8, _I),
        ("bids", 9, _L), ("asks", 10, _L)),
    9: (("agg_trade_id", 6, _I), ("price", 7, _D), ("quantity", 8, _D), ("first_trade_id", 9, _I),
        ("last_trade_id", 10, _I), ("trade_time", 11, _I), ("event_time", 12, _I),
        ("buyer_is_maker", 13, _B)),
    10: (("update_id", 6, _I), ("bid_price", 7, _D), ("bid_quantity", 8, _D),
         ("ask_price", 9, _D), ("ask_quantity", 10, _D), ("event_time", 11, _I),
         ("transaction_time", 12, _I)),
    11: (("event_time", 6, _I), ("mark_price", 7, _D), ("index_price", 8, _D),
         ("estimated_settle_price", 9, _D), ("funding_rate", 10, _D),
         ("next_funding_time", 11, _I)),
    12: (("event_time", 6, _I), ("side", 7, _S), ("order_type", 8, _S), ("time_in_force", 9, _S),
         ("quantity", 10, _D), ("price", 11, _D), ("average_price", 12, _D),
         ("order_status", 13, _S), ("last_filled_quantity", 14, _D), ("filled_quantity", 15, _D),
         ("trade_time", 16, _I)),
    13: (("open_interest", 6, _D), ("event_time", 7, _I)),
}  # fmt: skip
_SPOT_SYMBOL: Final = frozenset({2, 3, 4})  # symbol at 4, venue "binance"
_VENUE_SYMBOL: Final = frozenset(range(7, 14))  # venue at 4, symbol at 5
_KITE_INTS: Final = (
    ("instrument_token", 4), ("last_traded_quantity", 7), ("volume_traded", 9),
    ("total_buy_quantity", 10), ("total_sell_quantity", 11), ("last_trade_time", 16), ("oi", 17),
    ("oi_day_high", 18), ("oi_day_low", 19), ("exchange_timestamp", 20),
)  # fmt: skip
_KITE_PRICES: Final = (
    ("last_price", 6), ("average_traded_price", 8), ("open", 12), ("high", 13), ("low", 14),
    ("close", 15),
)  # fmt: skip


class _Slow(Exception):
    """A group holds a value the column path does not read plainly: take the record path."""


def _types_ok(col: tuple, want: type) -> bool:
    return set(map(type, col)) <= {want}


def _frame_plain(wires: tuple) -> dict[tuple[int, int], list[tuple]] | None:
    """The frame's wire tuples grouped by (type, length), each checked to hold exactly the
    msgpack types its record reads plainly, or None."""
    groups: dict[tuple[int, int], list[tuple]] = {}
    for w in wires:
        if type(w) is not tuple or len(w) < 4 or type(w[0]) is not int:
            return None
        key = (w[0], len(w))
        g = groups.get(key)
        if g is None:
            g = groups[key] = []
        g.append(w)
    for (t, n), group in groups.items():
        need = REQUIRED_FIELDS.get(t)  # type: ignore[call-overload]
        if type(t) is not int or t == 5 or need is None or n < 4 + need:
            return None
        cols = tuple(zip(*group, strict=True))
        if set(cols[1]) != {WIRE_VERSION} or not (
            _types_ok(cols[2], int) and _types_ok(cols[3], int)
        ):
            return None
        if t == 1:
            if not set(cols[5]) <= {0, 1, 2} or not all(
                _types_ok(cols[i], int) for i in (4, *(i for _c, i in _KITE_PRICES))
            ):
                return None
            for side in (cols[21], cols[22]):
                if not _types_ok(side, tuple) or any(len(s) % 3 for s in side):
                    return None
                if not _types_ok(tuple(chain.from_iterable(side)), int):
                    return None
            continue
        if not _types_ok(cols[4], str) or (t in _VENUE_SYMBOL and not _types_ok(cols[5], str)):
            return None
        for _c, i, kind in _LAYOUTS[t]:
            col = cols[i]
            if kind in (_S, _D):
                ok = _types_ok(col, str)
            elif kind == _I:
                ok = _types_ok(col, int)
            elif kind == _B:
                ok = _types_ok(col, bool)
            else:
                ok = _types_ok(col, tuple)
                if ok:
                    levels = tuple(chain.from_iterable(col))
                    ok = _types_ok(levels, tuple) and set(map(len, levels)) <= {2}
                    ok = ok and _types_ok(tuple(chain.from_iterable(levels)), str)
            if not ok:
                return None
    return groups


# ---------------------------------------------------------------- columns of one group


def _int64(col: tuple) -> pa.Array:
    return pa.array(col, pa.int64())  # as export's pa.array of the same cells


def _from_int64(values: np.ndarray, typ: pa.DataType) -> pa.Array:
    v = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(typ, len(v), [None, pa.py_buffer(v)])


def _scaled_decimal(values: np.ndarray) -> pa.Array:
    """decimal128(38, 8) whose unscaled integers are ``values`` (int64)."""
    out = np.empty((len(values), 2), dtype=np.int64)
    out[:, 0] = values
    out[:, 1] = values >> 63  # the high word of a two's-complement int128
    return pa.Array.from_buffers(_DEC, len(values), [None, pa.py_buffer(out)])


_DEC: Final = pa.decimal128(38, _SCALE)


def _decimals(text: pa.Array) -> pa.Array:
    """Decimal text as decimal128(38, 8), "" as null (export's ``Decimal(v) if v != ""``)."""
    if len(text) and not pc.all(pc.match_substring_regex(text, _PLAIN_DECIMAL)).as_py():
        raise _Slow
    empty = pc.equal(text, "")
    if pc.any(empty).as_py():
        text = pc.if_else(empty, pa.scalar(None, pa.string()), text)
    return pc.cast(text, _DEC)


def _schema_decimals(text: pa.Array) -> np.ndarray:
    """Where the text is a decimal today's schema accepts (parse.valid_decimal)."""
    return pc.match_substring_regex(text, _SCHEMA_DECIMAL).to_numpy(zero_copy_only=False)


def _level_list(col: tuple, level_type: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Binance (price, quantity) str levels as list<struct<price, quantity, orders>>, and per
    record whether every level is a decimal the schema accepts."""
    n = len(col)
    lengths = np.fromiter(map(len, col), np.int64, n)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    levels = tuple(chain.from_iterable(col))
    if levels:
        prices, qtys = zip(*levels, strict=True)
    else:
        prices = qtys = ()
    p = pa.array(prices, pa.string())
    q = pa.array(qtys, pa.string())
    bad = ~(_schema_decimals(p) & _schema_decimals(q)) if levels else np.zeros(0, bool)
    rows_ok = np.ones(n, dtype=bool)
    if bad.any():
        rows_ok = np.bincount(np.repeat(np.arange(n), lengths), weights=bad, minlength=n) == 0
    struct = pa.StructArray.from_arrays(
        [_decimals(p), _decimals(q), pa.nulls(len(levels), pa.int64())],
        fields=list(level_type.value_type),
    )
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=level_type), rows_ok


def _kite_divisor_power(tokens: np.ndarray) -> np.ndarray:
    """10^(8 - k) for each token, k the decimals of events.kite_price_divisor."""
    seg = tokens & 0xFF
    k = np.where(
        seg == KITE_SEGMENT_CDS,
        7,
        np.where(np.isin(seg, (KITE_SEGMENT_BCD, KITE_SEGMENT_NCO)), 4, 2),
    )
    return (10 ** (_SCALE - k)).astype(np.int64)


def _kite_prices(col: tuple, mult: np.ndarray) -> pa.Array:
    v = np.fromiter(col, np.int64, len(col))
    if len(v) and (v.max() > _KITE_PRICE_LIMIT or v.min() < -_KITE_PRICE_LIMIT):
        raise _Slow
    return _scaled_decimal(v * mult)


def _kite_levels(col: tuple, mult: np.ndarray, level_type: pa.DataType) -> pa.Array:
    n = len(col)
    lengths = np.fromiter(map(len, col), np.int64, n) // 3
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    flat = np.fromiter(chain.from_iterable(col), np.int64, 3 * total).reshape(total, 3)
    if total and (
        flat[:, 0].max() > _KITE_PRICE_LIMIT
        or flat[:, 0].min() < -_KITE_PRICE_LIMIT
        or flat[:, 1].max() >= _QTY_LIMIT
        or flat[:, 1].min() <= -_QTY_LIMIT
    ):
        raise _Slow
    struct = pa.StructArray.from_arrays(
        [
            _scaled_decimal(flat[:, 0] * np.repeat(mult, lengths)),
            _scaled_decimal(flat[:, 1] * 10**_SCALE),
            _from_int64(flat[:, 2], pa.int64()),
        ],
        fields=list(level_type.value_type),
    )
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=level_type)


class _Converter:
    """Groups of wire tuples to tables of the export schema."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.schema = export._schema(zone)
        self.types = {f.name: f.type for f in self.schema}

    def table(self, t: int, group: list[tuple], slow: bool) -> tuple[pa.Table, np.ndarray]:
        """The group's rows as a table, and per row whether the schema accepts the record
        (RefusedFilter); refused rows are left out of the table."""
        if slow:
            return self._slow(group)
        try:
            cols, ok = self._fast(t, group)
        except (_Slow, OverflowError):
            return self._slow(group)
        n = len(group)
        if not ok.all():
            return self._slow(group)
        arrays = [cols[c] if c in cols else pa.nulls(n, self.types[c]) for c in COLUMNS]
        return pa.Table.from_arrays(arrays, schema=self.schema), ok

    def _fast(self, t: int, group: list[tuple]) -> tuple[dict[str, pa.Array], np.ndarray]:
        n = len(group)
        w = tuple(zip(*group, strict=True))
        recv = np.fromiter(w[2], np.int64, n)
        out: dict[str, pa.Array] = {
            "time": _from_int64(recv, self.types["time"]),
            "recv_ns": _from_int64(recv, pa.int64()),
            "type": pa.repeat(_NAMES_OF_TYPE[t], n),
            "seq": _int64(w[3]),
        }
        ok = np.ones(n, dtype=bool)
        if t == 1:
            tokens = np.fromiter(w[4], np.int64, n)
            mult = _kite_divisor_power(tokens)
            out["stream"] = out["venue"] = pa.repeat("kite", n)
            out["instrument"] = pc.cast(_from_int64(tokens, pa.int64()), pa.string())
            out["mode"] = pa.array(KITE_MODES).take(pa.array(w[5], pa.int8()))
            for c, i in _KITE_INTS:
                out[c] = _int64(w[i])
            for c, i in _KITE_PRICES:
                out[c] = _kite_prices(w[i], mult)
            out["bids"] = _kite_levels(w[21], mult, self.types["bids"])
            out["asks"] = _kite_levels(w[22], mult, self.types["asks"])
            out["change"] = _int64(w[23]) if len(w) > 23 else pa.repeat(pa.scalar(0), n)
            return out, ok
        first = pa.array(w[4], pa.string())
        if t in _SPOT_SYMBOL:
            out["stream"] = out["venue"] = pa.repeat("binance", n)
            out["instrument"] = out["symbol"] = first
        elif t in _VENUE_SYMBOL:
            out["stream"] = out["venue"] = first
            out["instrument"] = out["symbol"] = pa.array(w[5], pa.string())
        else:  # Status
            out["stream"] = out["venue"] = first
        for c, i, kind in _LAYOUTS[t]:
            col = w[i]
            if kind == _I:
                out[c] = _int64(col)
                if t in _SPOT_SYMBOL:
                    a = out[c].to_numpy(zero_copy_only=False)
                    ok &= a >= 0
            elif kind == _S:
                out[c] = pa.array(col, pa.string())
            elif kind == _B:
                out[c] = pa.array(col, pa.bool_())
            elif kind == _D:
                text = pa.array(col, pa.string())
                if t in _SPOT_SYMBOL:
                    ok &= _schema_decimals(text)
                out[c] = _decimals(text)
            else:
                out[c], rows_ok = _level_list(col, self.types[c])
                if t in _SPOT_SYMBOL:
                    ok &= rows_ok
        return out, ok

    def _slow(self, group: list[tuple]) -> tuple[pa.Table, np.ndarray]:
        """export's record path for the group: decode, RefusedFilter's rule, the cells."""
        records = [decode_wire(w) for w in group]
        ok = np.fromiter(map(record_ok, records), bool, len(records))
        cols: list[list[object]] = [[] for _ in COLUMNS]
        for record, good in zip(records, ok, strict=True):
            if not good:
                continue
            row = record_row(record, self.zone)
            for col, cell in zip(cols, export._parquet_cells(row, record), strict=True):
                col.append(cell)
        try:
            arrays = [pa.array(col, type=f.type) for col, f in zip(cols, self.schema, strict=True)]
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ReplayError(f"cannot write a Parquet column: {exc}; use --format jsonl") from None
        return pa.Table.from_arrays(arrays, schema=self.schema), ok


# ---------------------------------------------------------------- the replay order


class _Order:
    """ordering.reorder on columns: the same sort points (``_MIN_SORT_BATCH`` records read and
    at least as many as held sorted), cuts (a window behind the newest held) and late count, so
    the rows come out in the order reorder gives the records."""

    def __init__(self, window_ns: int, stats: OrderStats) -> None:
        self.window = window_ns
        self.stats = stats
        # the held records as key columns: (recv, stream code, seq, row), the sorted ones first;
        # row: the record's row in the held tables, -1 for a refused record
        empty = np.zeros(0, np.int64)
        self.parts: list[tuple[np.ndarray, ...]] = [(empty, empty, empty, empty)]
        self.sorted = 0
        self.unsorted = 0
        self.emitted_up_to: int | None = None
        self.names: dict[str, int] = {}  # stream name -> code
        self._fixed: np.ndarray | None = None  # record type -> code of its fixed stream, or -1

    def stream_codes(self, streams: list[str]) -> np.ndarray:
        names = self.names
        return np.fromiter(
            (names.setdefault(s, len(names)) for s in streams), np.int64, len(streams)
        )

    def wire_stream_codes(self, wires: list[tuple], types: np.ndarray) -> np.ndarray:
        """The stream codes of wire tuples (events.wire_stream): by type where it fixes the
        stream, else the venue at position 4."""
        fixed = self._fixed
        if fixed is None:
            fixed = self._fixed = np.full(256, -1, np.int64)
            for t, stream in _FIXED_STREAM.items():
                fixed[t] = self.names.setdefault(stream, len(self.names))
        codes = fixed[types]
        other = np.flatnonzero(codes < 0)
        if len(other):
            codes[other] = self.stream_codes([wires[i][4] for i in other.tolist()])
        return codes

    def lowest_row(self) -> int | None:
        """The lowest table row a held record points into (None: none held)."""
        rows = np.concatenate([p[3] for p in self.parts])
        rows = rows[rows >= 0]
        return int(rows.min()) if len(rows) else None

    def feed(
        self, recv: np.ndarray, stream: np.ndarray, seq: np.ndarray, row: np.ndarray
    ) -> Iterator[np.ndarray]:
        """Take the records (in write order); yield the rows due out, in replay order."""
        at = 0
        n = len(recv)
        while at < n:
            need = max(_MIN_SORT_BATCH, self.sorted) - self.unsorted
            take = min(need, n - at)
            part = slice(at, at + take)
            if self.emitted_up_to is not None:
                self.stats.late += int(np.count_nonzero(recv[part] < self.emitted_up_to))
            self.stats.records += take
            self.parts.append((recv[part], stream[part], seq[part], row[part]))
            self.unsorted += take
            at += take
            if take == need:
                yield from self._sort_and_cut(final=False)

    def finish(self) -> Iterator[np.ndarray]:
        return self._sort_and_cut(final=True)

    def _sort_and_cut(self, final: bool) -> Iterator[np.ndarray]:
        recv, stream, seq, row = (np.concatenate(c) for c in zip(*self.parts, strict=True))
        rank = np.empty(len(self.names), np.int64)
        by_name = np.argsort(np.array(list(self.names), dtype=object), kind="stable")
        rank[by_name] = np.arange(len(self.names))
        order = np.lexsort((seq, rank[stream], recv))  # stable, as list.sort
        recv, stream, seq, row = recv[order], stream[order], seq[order], row[order]
        if final:
            cut = len(recv)
        else:
            cut = int(np.searchsorted(recv, recv[-1] - self.window, side="right"))
            if cut:
                self.emitted_up_to = int(recv[cut - 1])
        self.parts = [(recv[cut:], stream[cut:], seq[cut:], row[cut:])]
        self.sorted = len(recv) - cut
        self.unsorted = 0
        if cut:
            yield row[:cut]


# ---------------------------------------------------------------- the whole replay


def write_columnar(
    store: StoreReader,
    selection: Selection,
    start_ns: int | None,
    end_ns: int | None,
    zone: ZoneInfo,
    write_batch: Callable[[pa.RecordBatch], None],
    refused: RefusedFilter,
    progress: ProgressLine | None = None,
    window_ns: int = DEFAULT_WINDOW_NS,
) -> int:
    """The ticks of ``store`` selected by ``selection``'s kinds (no venue, symbol or snapshot
    selection: see :func:`shriven.replay.api.replay_range`) in ``[start_ns, end_ns)``, in replay
    order, as batches of the export schema passed to ``write_batch``. Returns the rows written."""
    conv = _Converter(zone)
    wanted = frozenset(t.TYPE for k in selection.kinds for t in KINDS[k])
    order = _Order(window_ns, store.order)
    held: list[pa.Table] = []  # converted chunks whose rows are not all out yet
    held_base = 0  # row number of held[0]'s first row
    out: list[pa.Table] = []
    out_rows = 0
    written = 0
    last_recv: int | None = None

    def emit(rows: np.ndarray) -> None:
        nonlocal out_rows
        good = rows[rows >= 0]
        refused.skipped += len(rows) - len(good)
        if len(good):
            out.append(pa.concat_tables(held).take(pa.array(good - held_base)))
            out_rows += len(good)

    def flush(final: bool) -> None:
        # export's batches: 65,536 rows each, the rest at the end, so that the files are
        # the same bytes as the record path writes
        nonlocal out_rows, written, last_recv
        if not out or (out_rows < _OUT_ROWS and not final):
            return
        table = pa.concat_tables(out).combine_chunks()
        out.clear()
        while table.num_rows >= _OUT_ROWS or (final and table.num_rows):
            part = table.slice(0, _OUT_ROWS)
            write_batch(part.combine_chunks().to_batches()[0])
            written += part.num_rows
            last_recv = part.column("recv_ns")[-1].as_py()
            if progress is not None:
                progress.update(written, last_recv)
            table = table.slice(part.num_rows)
        out_rows = table.num_rows
        if out_rows:
            out.append(table)

    chunk: dict[tuple[int, int], list[tuple]] = {}  # (type, wire length or -1: slow) -> wires
    gid_of: dict[tuple[int, int], int] = {}  # the chunk's groups, numbered as met
    keys: list[tuple[np.ndarray, ...]] = []  # per frame: recv, stream, seq, group, place
    chunk_rows = 0
    next_row = [held_base]

    def convert() -> None:
        nonlocal chunk_rows
        if not keys:
            return
        # rows of the held tables: group by group, in the order the chunk's groups were met
        base = next_row[0]
        remaps = []
        for gkey, group in chunk.items():
            table, ok = conv.table(gkey[0], group, gkey[1] < 0)
            remap = np.full(len(group), -1, np.int64)
            remap[ok] = base + np.arange(int(ok.sum()))
            remaps.append(remap)
            held.append(table)
            base += table.num_rows
        next_row[0] = base
        starts = np.cumsum([0] + [len(r) for r in remaps[:-1]])
        rows_of = np.concatenate(remaps)
        for recv, stream, seq, gids, index in keys:
            rows = rows_of[starts[gids] + index]
            for r in order.feed(recv, stream, seq, rows):
                emit(r)
                flush(False)
        chunk.clear()
        gid_of.clear()
        keys.clear()
        chunk_rows = 0
        drop_emitted()

    def drop_emitted() -> None:
        # the chunks no record still held by the order points into
        nonlocal held_base
        low = order.lowest_row()
        if low is None:
            low = next_row[0]
        while held and low - held_base >= held[0].num_rows:
            held_base += held[0].num_rows
            held.pop(0)

    reader = store.ticks
    lo = -(1 << 63) if start_ns is None else start_ns
    hi = 1 << 63 if end_ns is None else end_ns
    if selection.needs_ticks and reader.directory.is_dir():
        for frame in reader.frames(start_ns, end_ns):
            try:
                with paused_gc():
                    wires = unpack_batch(frame.payload)
                groups = _frame_plain(wires)
                if groups is None:
                    # decodable (or raising the record reader's error), but not in the plain
                    # forms: its groups take the record path
                    decode_wires(wires)
                _check_count(frame, len(wires))
            except (ValueError, msgpack.UnpackException) as exc:  # as WalReader._unpack
                if reader.strict:
                    raise WalCorruptionError(str(frame.path), frame.offset, str(exc)) from None
                reader.stats.skip(frame.path, frame.offset, frame.length, str(exc))
                continue
            reader.stats.records_read += len(wires)
            inside = lo <= frame.min_ns and frame.max_ns < hi
            if groups is not None and inside and all(t in wanted for t, _n in groups):
                # every record of the frame, in plain groups: placed a group at a time
                picked = list(wires)
                n = len(picked)
                if not n:
                    continue
                types = np.fromiter(map(itemgetter(0), picked), np.int64, n)
                lengths = np.fromiter(map(len, picked), np.int64, n)
                codes, local = np.unique(types << 32 | lengths, return_inverse=True)
                gid_list, base_list = [], []
                for code in codes.tolist():
                    g = (code >> 32, code & 0xFFFFFFFF)
                    lst = chunk.get(g)
                    if lst is None:
                        lst = chunk[g] = []
                        gid_of[g] = len(gid_of)
                    gid_list.append(gid_of[g])
                    base_list.append(len(lst))
                    lst.extend(groups[g])
                # each record's place in its group: its rank among the frame's records of it
                by_group = np.argsort(local, kind="stable")
                counts = np.bincount(local)
                place = np.empty(n, np.int64)
                place[by_group] = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
                gids = np.array(gid_list)[local]
                index = np.array(base_list)[local] + place
            else:
                picked = [w for w in wires if w[0] in wanted and (inside or lo <= w[2] < hi)]
                if not picked:
                    continue
                gid_seq: list[int] = []
                index_seq: list[int] = []
                for w in picked:
                    g = (w[0], len(w)) if groups is not None else (w[0], -1)
                    lst = chunk.get(g)
                    if lst is None:
                        lst = chunk[g] = []
                        gid_of[g] = len(gid_of)
                    index_seq.append(len(lst))
                    lst.append(w)
                    gid_seq.append(gid_of[g])
                n = len(picked)
                types = np.fromiter(map(itemgetter(0), picked), np.int64, n)
                gids, index = np.array(gid_seq), np.array(index_seq)
            keys.append(
                (
                    np.fromiter(map(itemgetter(2), picked), np.int64, n),
                    order.wire_stream_codes(picked, types),
                    np.fromiter(map(itemgetter(3), picked), np.int64, n),
                    gids,
                    index,
                )
            )
            chunk_rows += n
            if chunk_rows >= _CHUNK_ROWS:
                convert()
    convert()
    for rows in order.finish():
        emit(rows)
    flush(True)
    if written == 0:
        write_batch(pa.RecordBatch.from_pylist([], schema=conv.schema))
    if progress is not None:
        progress.finish(written, last_recv)
    return written


def write_file(
    store: StoreReader,
    selection: Selection,
    start_ns: int | None,
    end_ns: int | None,
    zone: ZoneInfo,
    refused: RefusedFilter,
    out: IO[bytes],
    fmt: str,
    progress: ProgressLine | None = None,
) -> int:
    """:func:`write_columnar` into a Parquet file or an Arrow IPC stream (``fmt``), with the
    writer settings of ``export.write_parquet``/``write_arrow``."""
    schema = export._schema(zone)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetWriter(out, schema, compression="zstd") as writer:
            return write_columnar(
                store, selection, start_ns, end_ns, zone, writer.write_batch, refused, progress
            )
    with pa.ipc.new_stream(out, schema) as stream:
        return write_columnar(
            store, selection, start_ns, end_ns, zone, stream.write_batch, refused, progress
        )
