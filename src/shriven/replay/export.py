"""Writers for replayed records: ``table`` (for people), ``jsonl``, ``csv``, ``parquet`` and
``arrow`` (an Arrow IPC stream of the Parquet columns).

Every format is deterministic: the same records give the same bytes (no wall-clock times, no
random ids, fixed key and column order). Each states the time zone: ``time`` values carry their
offset (jsonl, csv, table rows), the table starts with a ``# times in ...`` line, and Parquet's
``time`` column is a ``timestamp[ns, tz=<zone>]``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import IO, Final
from zoneinfo import ZoneInfo

from shriven.errors import ReplayError
from shriven.events import (
    KITE_SEGMENT_INDICES,
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceForceOrder,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BinanceMarkPrice,
    BinanceOpenInterest,
    BinanceTrade,
    BookSnapshot,
    KiteTick,
    Record,
    Status,
    kite_price_divisor,
)
from shriven.replay.rows import COLUMNS, book_price, book_quantity, kite_price, record_row

__all__ = [
    "FORMATS",
    "check_out",
    "text_view",
    "write_arrow",
    "write_csv",
    "write_jsonl",
    "write_parquet",
    "write_table",
]

FORMATS: Final = ("table", "jsonl", "csv", "parquet", "arrow")


def check_out(out: Path, store_dir: Path, force: bool) -> bool:
    """Refuse an export path that would damage the store being read (anything inside it,
    symlinks resolved) or replace an existing file without ``force``. True when ``out`` is to be
    written through a temporary file and a rename; False for a special file (a FIFO,
    /dev/stdout) that is written directly."""
    target = out.resolve()
    store = Path(store_dir).resolve()
    if target == store or target.is_relative_to(store):
        raise ReplayError(
            f"--out {out} is inside the store being read ({store}): writing there would damage "
            "it; choose a path outside the store"
        )
    if out.is_dir():
        raise ReplayError(f"--out {out} is a directory: give a file name")
    if out.exists() and not out.is_file():
        return False
    if out.exists() and not force:
        raise ReplayError(f"--out {out} exists: pass --force to replace it, or choose another")
    return True


@contextmanager
def text_view(f: IO[bytes]) -> Iterator[IO[str]]:
    """A UTF-8 text stream over the binary ``f`` for the text formats, flushed when the block
    ends without an error and detached either way, so ``f`` stays open for its owner."""
    text = io.TextIOWrapper(f, encoding="utf-8", newline="")  # type: ignore[type-var]
    try:
        yield text
        text.flush()
    finally:
        text.detach()


def write_jsonl(
    records: Iterable[Record], out: IO[str], zone: ZoneInfo, flush: bool = False
) -> int:
    """One JSON object per line with the columns of its record type (see rows.COLUMNS)."""
    n = 0
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    for record in records:
        out.write(dumps(record_row(record, zone)))
        out.write("\n")
        n += 1
        if flush:
            out.flush()
    return n


def write_csv(records: Iterable[Record], out: IO[str], zone: ZoneInfo, flush: bool = False) -> int:
    """A header of every column, then one row per record; cells a record type does not have
    are empty; level lists are JSON text; booleans are ``true``/``false``."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    for record in records:
        row = record_row(record, zone)
        writer.writerow([_csv_cell(row.get(c)) for c in COLUMNS])
        n += 1
        if flush:
            out.flush()
    return n


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return value


# ---------------------------------------------------------------- table


_TABLE_HEAD: Final = f"{'time':<35} {'type':<22} {'instrument':<14} details"


def write_table(
    records: Iterable[Record], out: IO[str], zone: ZoneInfo, flush: bool = False
) -> int:
    out.write(f"# times in {zone.key}, each with its UTC offset\n{_TABLE_HEAD}\n")
    n = 0
    for record in records:
        row = record_row(record, zone)
        out.write(
            f"{row['time']:<35} {row['type']:<22} {row['instrument']!s:<14} {_details(record)}\n"
        )
        n += 1
        if flush:
            out.flush()
    return n


def _details(record: Record) -> str:
    t = type(record)
    if t is KiteTick:
        r: KiteTick = record  # type: ignore[assignment]
        div = kite_price_divisor(r.instrument_token)
        parts = [f"{r.mode} ltp={kite_price(r.last_price, div)}"]
        # Index packets carry no traded quantity or volume: zeros there would mislead.
        if r.mode != "ltp" and r.instrument_token & 0xFF != KITE_SEGMENT_INDICES:
            parts.append(f"ltq={r.last_traded_quantity} vol={r.volume_traded}")
        if r.oi:
            parts.append(f"oi={r.oi}")
        if r.bids:
            p, q, _ = r.bids[0]
            parts.append(f"bid={kite_price(p, div)}x{q}")
        if r.asks:
            p, q, _ = r.asks[0]
            parts.append(f"ask={kite_price(p, div)}x{q}")
        return " ".join(parts)
    if t is BinanceTrade:
        b: BinanceTrade = record  # type: ignore[assignment]
        side = "sell" if b.buyer_is_maker else "buy"
        return f"trade {b.trade_id} {side} {b.quantity} @ {b.price}"
    if t is BinanceDepth:
        d: BinanceDepth = record  # type: ignore[assignment]
        return (
            f"diff U={d.first_update_id} u={d.last_update_id} bids={len(d.bids)} asks={len(d.asks)}"
        )
    if t is BinanceDepthSnapshot:
        s: BinanceDepthSnapshot = record  # type: ignore[assignment]
        return f"rest snapshot lastUpdateId={s.last_update_id} {len(s.bids)}x{len(s.asks)} levels"
    if t is BookSnapshot:
        k: BookSnapshot = record  # type: ignore[assignment]
        bid = _book_level(k, k.bids[0]) if k.bids else "-"
        ask = _book_level(k, k.asks[0]) if k.asks else "-"
        return f"book update_id={k.update_id} bid={bid} ask={ask} {len(k.bids)}x{len(k.asks)}"
    if t in _FUTURES_DETAILS:
        return _FUTURES_DETAILS[t](record)
    st: Status = record  # type: ignore[assignment]
    # The venue first: "connected" alone does not say whether Kite or Binance connected.
    return f"{st.venue} {st.kind} {st.detail}".rstrip()


_FUTURES_DETAILS: Final[dict[type, Callable[..., str]]] = {
    BinanceFuturesDepth: lambda d: (
        f"{d.venue} diff U={d.first_update_id} u={d.last_update_id} pu={d.prev_update_id} "
        f"bids={len(d.bids)} asks={len(d.asks)}"
    ),
    BinanceFuturesDepthSnapshot: lambda s: (
        f"{s.venue} rest snapshot lastUpdateId={s.last_update_id} {len(s.bids)}x{len(s.asks)} "
        "levels"
    ),
    BinanceAggTrade: lambda a: (
        f"{a.venue} aggTrade {a.agg_trade_id} {'sell' if a.buyer_is_maker else 'buy'} "
        f"{a.quantity} @ {a.price}"
    ),
    BinanceBookTicker: lambda b: (
        f"{b.venue} ticker u={b.update_id} bid={b.bid_price}x{b.bid_quantity} "
        f"ask={b.ask_price}x{b.ask_quantity}"
    ),
    BinanceMarkPrice: lambda m: (
        f"{m.venue} mark={m.mark_price} index={m.index_price} funding={m.funding_rate or '-'}"
    ),
    BinanceForceOrder: lambda f: (
        f"{f.venue} liquidation {f.side} {f.quantity} @ {f.price} avg={f.average_price} {f.status}"
    ),
    BinanceOpenInterest: lambda o: f"{o.venue} open interest {o.open_interest}",
}


def _book_level(k: BookSnapshot, level: tuple[float, float]) -> str:
    price, quantity = level
    return f"{book_price(k.venue, k.instrument, price)}x{book_quantity(k.venue, quantity)}"


# ---------------------------------------------------------------- parquet

_BATCH_ROWS: Final = 65_536
PRICE_SCALE: Final = 8  # Binance sends 8 decimals; Kite needs at most 7 (currency derivatives)


def _schema(zone: ZoneInfo):  # type: ignore[no-untyped-def]  # pyarrow is optional
    import pyarrow as pa

    dec = pa.decimal128(38, PRICE_SCALE)
    venue_level = pa.list_(pa.struct([("price", dec), ("quantity", dec), ("orders", pa.int64())]))
    book_level = pa.list_(pa.struct([("price", pa.float64()), ("quantity", pa.float64())]))
    types: dict[str, object] = {
        "time": pa.timestamp("ns", tz=zone.key),
        "type": pa.string(),
        "stream": pa.string(),
        "venue": pa.string(),
        "instrument": pa.string(),
        "mode": pa.string(),
        "symbol": pa.string(),
        "kind": pa.string(),
        "detail": pa.string(),
        "buyer_is_maker": pa.bool_(),
        "bids": venue_level,
        "asks": venue_level,
        "book_bids": book_level,
        "book_asks": book_level,
    }
    for name in ("last_price", "average_traded_price", "open", "high", "low", "close"):
        types[name] = dec
    types["price"] = dec
    types["quantity"] = dec
    for name in _FUTURES_DECIMALS:
        types[name] = dec
    for name in ("side", "order_type", "time_in_force", "order_status"):
        types[name] = pa.string()
    return pa.schema([(c, types.get(c, pa.int64())) for c in COLUMNS])


# Prices, quantities and rates of the futures-era types: decimal128(38, 8) like the others (a
# funding rate is signed; a delivery contract's empty one is null).
_FUTURES_DECIMALS: Final = (
    "bid_price",
    "bid_quantity",
    "ask_price",
    "ask_quantity",
    "mark_price",
    "index_price",
    "estimated_settle_price",
    "funding_rate",
    "average_price",
    "last_filled_quantity",
    "filled_quantity",
    "open_interest",
)
_DECIMAL_COLUMNS: Final = frozenset(
    {
        "last_price",
        "average_traded_price",
        "open",
        "high",
        "low",
        "close",
        "price",
        "quantity",
        *_FUTURES_DECIMALS,
    }
)


def _parquet_cells(row: dict[str, object], record: Record) -> Iterator[object]:
    for c in COLUMNS:
        v = row.get(c)
        if v is None:
            yield None
        elif c == "time":
            yield record.recv_ns
        elif c in _DECIMAL_COLUMNS:
            yield Decimal(v) if v != "" else None  # type: ignore[arg-type]
        elif c in ("bids", "asks"):
            yield [
                {
                    "price": Decimal(lvl[0]),
                    "quantity": Decimal(str(lvl[1])),
                    "orders": lvl[2] if len(lvl) > 2 else None,
                }
                for lvl in v  # type: ignore[attr-defined]
            ]
        elif c in ("book_bids", "book_asks"):
            yield [{"price": p, "quantity": q} for p, q in v]  # type: ignore[attr-defined]
        else:
            yield v


def write_parquet(records: Iterable[Record], out: IO[bytes], zone: ZoneInfo) -> int:
    """One typed column per field (see rows.COLUMNS): prices and Binance quantities as
    decimal128(38, 8), counts and ids as int64, level lists as lists of structs."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ReplayError(
            "parquet output needs pyarrow: pip install 'shriven[parquet]', or use --format jsonl"
        ) from None
    with pq.ParquetWriter(out, _schema(zone), compression="zstd") as writer:
        return _write_batches(records, zone, writer.write_batch)


def write_arrow(records: Iterable[Record], out: IO[bytes], zone: ZoneInfo) -> int:
    """The Parquet columns as an Arrow IPC stream (written as it goes: no seeking, no footer)."""
    try:
        import pyarrow as pa
    except ImportError:
        raise ReplayError(
            "arrow output needs pyarrow: pip install 'shriven[parquet]', or use --format jsonl"
        ) from None
    with pa.ipc.new_stream(out, _schema(zone)) as writer:
        return _write_batches(records, zone, writer.write_batch)


def _write_batches(
    records: Iterable[Record], zone: ZoneInfo, write_batch: Callable[[object], None]
) -> int:
    import pyarrow as pa

    schema = _schema(zone)
    n = 0
    cols: list[list[object]] = [[] for _ in COLUMNS]

    def flush_batch() -> None:
        try:
            arrays = [pa.array(col, type=f.type) for col, f in zip(cols, schema, strict=True)]
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ReplayError(f"cannot write a Parquet column: {exc}; use --format jsonl") from None
        write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
        for col in cols:
            col.clear()

    for record in records:
        row = record_row(record, zone)
        for col, cell in zip(cols, _parquet_cells(row, record), strict=True):
            col.append(cell)
        n += 1
        if len(cols[0]) >= _BATCH_ROWS:
            flush_batch()
    if cols[0] or n == 0:
        flush_batch()
    return n
