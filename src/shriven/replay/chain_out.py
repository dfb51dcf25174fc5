"""Option chains as text tables, JSON lines, CSV and Parquet: one row per (time, expiry, strike,
type). Prices are rupees as decimal text (Parquet: decimal128(38, 8)); IV is a decimal (0.15 =
15%), theta rupees per day, vega rupees per vol point."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from decimal import Decimal
from typing import IO, Final
from zoneinfo import ZoneInfo

from shriven.errors import ReplayError
from shriven.replay.chain import CHAIN_COLUMNS, ChainLeg, ChainSnapshot, ExpiryChain
from shriven.replay.times import format_ns

__all__ = ["chain_rows", "write_chain"]

_PRICE_COLUMNS: Final = frozenset({"spot", "future", "last_price", "bid", "ask"})
_INT_COLUMNS: Final = frozenset({"bid_qty", "ask_qty", "oi", "volume", "instrument_token"})
_TEXT_COLUMNS: Final = frozenset(
    {"underlying", "expiry", "type", "tradingsymbol", "note", "quote_time", "time"}
)


def _expiries(snapshot: ChainSnapshot, selected: Sequence[date]) -> list[ExpiryChain]:
    return [e for e in snapshot.expiries if not selected or e.expiry in selected]


def chain_rows(
    snapshot: ChainSnapshot, zone: ZoneInfo, selected: Sequence[date] = ()
) -> Iterator[dict[str, object]]:
    """The legs of ``snapshot`` (of the ``selected`` expiries, default all) as rows."""
    time = format_ns(snapshot.at_ns, zone)
    for e in _expiries(snapshot, selected):
        for leg in e.legs:
            yield _row(time, snapshot, e, leg, zone)


def _row(
    time: str, s: ChainSnapshot, e: ExpiryChain, leg: ChainLeg, zone: ZoneInfo
) -> dict[str, object]:
    return {
        "time": time,
        "underlying": s.underlying,
        "expiry": e.expiry.isoformat(),
        "years": e.years,
        "spot": s.spot,
        "future": e.future_price,
        "forward": e.forward,
        "strike": leg.strike,
        "type": leg.type,
        "tradingsymbol": leg.tradingsymbol,
        "instrument_token": leg.instrument_token,
        "atm": leg.atm,
        "quote_time": format_ns(leg.quote_ns, zone) if leg.quote_ns is not None else None,
        "last_price": leg.last_price,
        "bid": leg.bid,
        "bid_qty": leg.bid_qty,
        "ask": leg.ask,
        "ask_qty": leg.ask_qty,
        "oi": leg.oi,
        "volume": leg.volume,
        "iv_mid": leg.iv_mid,
        "iv_bid": leg.iv_bid,
        "iv_ask": leg.iv_ask,
        "iv_last": leg.iv_last,
        "delta": leg.delta,
        "gamma": leg.gamma,
        "theta": leg.theta,
        "vega": leg.vega,
        "note": leg.note,
    }


def write_chain(
    snapshots: Iterable[ChainSnapshot],
    fmt: str,
    out: IO[str] | IO[bytes],
    zone: ZoneInfo,
    selected: Sequence[date] = (),
) -> int:
    """Write every snapshot in ``fmt``; returns the number of legs written."""
    if fmt == "table":
        return _write_table(snapshots, out, zone, selected)  # type: ignore[arg-type]
    if fmt == "jsonl":
        n = 0
        for s in snapshots:
            for row in chain_rows(s, zone, selected):
                out.write(json.dumps(row, separators=(",", ":")) + "\n")  # type: ignore[arg-type]
                n += 1
        return n
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")  # type: ignore[arg-type]
        w.writerow(CHAIN_COLUMNS)
        n = 0
        for s in snapshots:
            for row in chain_rows(s, zone, selected):
                w.writerow(["" if row[c] is None else row[c] for c in CHAIN_COLUMNS])
                n += 1
        return n
    if fmt == "parquet":
        return _write_parquet(snapshots, out, zone, selected)  # type: ignore[arg-type]
    raise ReplayError(f"unknown --format {fmt!r}: use table, jsonl, csv or parquet")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _s(x: object) -> str:
    return "-" if x is None else str(x)


_HEADER: Final = (
    f"  {'strike':>9} {'type':<4} {'last':>9} {'bid':>9} {'bid qty':>8} {'ask':>9} "
    f"{'ask qty':>8} {'oi':>10} {'volume':>10} {'iv mid':>7} {'iv bid':>7} {'iv ask':>7} "
    f"{'iv last':>7} {'delta':>7} {'gamma':>9} {'theta':>8} {'vega':>7}  note"
)


def _write_table(
    snapshots: Iterable[ChainSnapshot], out: IO[str], zone: ZoneInfo, selected: Sequence[date]
) -> int:
    n = 0
    for s in snapshots:
        out.write(
            f"{s.underlying} at {format_ns(s.at_ns, zone)}: spot {_s(s.spot)}; "
            f"discount rate {100 * s.rate:.2f}%\n"
        )
        for e in _expiries(s, selected):
            basis = f"; basis {_pct(e.basis)} a year" if e.basis is not None else ""
            fwd = f"{e.forward:.2f}" if e.forward is not None else "-"
            out.write(
                f"expiry {e.expiry} ({e.years * 365:.2f} days to 15:30 IST): forward {fwd} "
                f"({e.forward_from}); future {_s(e.future_price)}{basis}\n"
            )
            out.write(_HEADER + "\n")
            for leg in e.legs:
                mark = "*" if leg.atm else " "
                out.write(
                    f"{mark} {leg.strike:>9g} {leg.type:<4} {_s(leg.last_price):>9} "
                    f"{_s(leg.bid):>9} {_s(leg.bid_qty):>8} {_s(leg.ask):>9} "
                    f"{_s(leg.ask_qty):>8} {_s(leg.oi):>10} {_s(leg.volume):>10} "
                    f"{_pct(leg.iv_mid):>7} {_pct(leg.iv_bid):>7} {_pct(leg.iv_ask):>7} "
                    f"{_pct(leg.iv_last):>7} {_f(leg.delta, '.4f'):>7} {_f(leg.gamma, '.6f'):>9} "
                    f"{_f(leg.theta, '.2f'):>8} {_f(leg.vega, '.2f'):>7}  {leg.note}".rstrip()
                    + "\n"
                )
                n += 1
        if s.calendar_basis is not None:
            out.write(
                f"calendar basis (next vs current month future): {_pct(s.calendar_basis)} a year\n"
            )
        out.write("* at the money (strike nearest the forward)\n")
    return n


def _write_parquet(
    snapshots: Iterable[ChainSnapshot], out: IO[bytes], zone: ZoneInfo, selected: Sequence[date]
) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ReplayError(
            "parquet output needs pyarrow: pip install 'shriven[parquet]', or use --format jsonl"
        ) from None
    dec = pa.decimal128(38, 8)
    types = []
    for c in CHAIN_COLUMNS:
        if c == "time":
            types.append(pa.timestamp("ns", tz=zone.key))
        elif c in _PRICE_COLUMNS:
            types.append(dec)
        elif c in _INT_COLUMNS:
            types.append(pa.int64())
        elif c == "atm":
            types.append(pa.bool_())
        elif c in _TEXT_COLUMNS:
            types.append(pa.string())
        else:
            types.append(pa.float64())
    schema = pa.schema(list(zip(CHAIN_COLUMNS, types, strict=True)))
    cols: list[list[object]] = [[] for _ in CHAIN_COLUMNS]
    n = 0

    def flush(writer: pq.ParquetWriter) -> None:
        arrays = [pa.array(col, type=f.type) for col, f in zip(cols, schema, strict=True)]
        writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
        for col in cols:
            col.clear()

    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for s in snapshots:
            for row in chain_rows(s, zone, selected):
                for col, c in zip(cols, CHAIN_COLUMNS, strict=True):
                    v = row[c]
                    if c == "time":
                        v = s.at_ns
                    elif c in _PRICE_COLUMNS and v is not None:
                        v = Decimal(v)  # type: ignore[arg-type]
                    col.append(v)
                n += 1
            if len(cols[0]) >= 65_536:
                flush(writer)
        if cols[0] or n == 0:
            flush(writer)
    return n
