"""Put-call parity violations in recorded (or live) Kite ticks, after spreads: the feed that turns
ticks into :class:`~shriven.analytics.ParityEvent` s, and ``replay_arb`` which lists them for a
time range. The live pipeline runs the same feed behind a tap (app/parity_tap.py).

The hedge of an expiry is the future expiring the same day; for a weekly expiry, the future of
the same month with its bid and ask carried back to the expiry at the carry it implies over spot
(as the chain's forward, see replay/chain.py), which needs a spot tick.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Final
from zoneinfo import ZoneInfo

from shriven.analytics import ParityEvent, ParityWatch, Quote
from shriven.analytics.expiry import expiry_ns, years_between
from shriven.errors import NotRecordedError, ReplayError, ShrivenError
from shriven.events import KiteTick, kite_price_divisor
from shriven.files import atomic_output
from shriven.replay import export
from shriven.replay.chain import ChainUniverse, DerivativeRow, resolve_chain
from shriven.replay.instruments import instruments_for
from shriven.replay.select import Selection
from shriven.replay.store import StoreReader
from shriven.replay.times import format_ns
from shriven.wal.gc import scan_gc

__all__ = ["ARB_COLUMNS", "DEFAULT_THRESHOLD", "ArbResult", "ParityFeed", "replay_arb"]

DEFAULT_THRESHOLD: Final = 0.0
ARB_COLUMNS: Final = (
    "time", "underlying", "expiry", "strike", "event", "direction", "edge", "since",
)  # fmt: skip


def _top(tick: KiteTick) -> Quote:
    div = kite_price_divisor(tick.instrument_token)
    bid = tick.bids[0][0] / div if tick.bids and tick.bids[0][0] and tick.bids[0][1] else None
    ask = tick.asks[0][0] / div if tick.asks and tick.asks[0][0] and tick.asks[0][1] else None
    return Quote(bid, ask)


@dataclass(slots=True)
class ParityFeed:
    """Ticks of one underlying's chain in, parity events out (pure; see the module)."""

    universe: ChainUniverse
    threshold: float
    rate: float
    watch: ParityWatch = field(init=False)
    _spot: float | None = None
    _futures: dict[int, Quote] = field(default_factory=dict)
    # expiry -> the future that hedges it
    _hedge: dict[date, DerivativeRow] = field(default_factory=dict)
    _by_future: dict[int, list[date]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.watch = ParityWatch(self.threshold)
        futures = list(self.universe.futures.values())
        for e in sorted({r.expiry for r in self.universe.options.values() if r.expiry}):
            same_day = [f for f in futures if f.expiry == e]
            month = [
                f
                for f in futures
                if f.expiry and (f.expiry.year, f.expiry.month) == (e.year, e.month)
            ]
            hedge = (same_day or month or [None])[0]
            if hedge is not None:
                self._hedge[e] = hedge
                self._by_future.setdefault(hedge.instrument_token, []).append(e)

    def apply(self, tick: KiteTick) -> list[ParityEvent]:
        token = tick.instrument_token
        u = self.universe
        if token == u.spot_token:
            div = kite_price_divisor(token)
            self._spot = tick.last_price / div if tick.last_price else None
            return []
        row = u.options.get(token)
        if row is not None and row.expiry in self._hedge:
            expiry = row.expiry
            self._discount(tick.recv_ns, expiry)
            return self.watch.set_option(
                tick.recv_ns,
                expiry.isoformat(),
                row.strike,
                row.instrument_type == "CE",
                _top(tick),
            )
        if token in self._by_future:
            quote = _top(tick)
            events: list[ParityEvent] = []
            for expiry in self._by_future[token]:
                hedged = self._carried(tick.recv_ns, expiry, quote)
                if hedged is None:
                    continue
                self._discount(tick.recv_ns, expiry)
                events += self.watch.set_future(tick.recv_ns, expiry.isoformat(), hedged)
            return events
        return []

    def _discount(self, at_ns: int, expiry: date) -> None:
        years = max(years_between(at_ns, expiry_ns(expiry)), 0.0)
        self.watch.discount[expiry.isoformat()] = math.exp(-self.rate * years)

    def _carried(self, at_ns: int, expiry: date, quote: Quote) -> Quote | None:
        future = self._hedge[expiry]
        if future.expiry == expiry:
            return quote
        mid = quote.mid
        if self._spot is None or mid is None or future.expiry is None:
            return None
        t = years_between(at_ns, expiry_ns(expiry))
        t_fut = years_between(at_ns, expiry_ns(future.expiry))
        if t <= 0 or t_fut <= 0:
            return None
        factor = (self._spot / mid) ** (1.0 - t / t_fut)  # S (F/S)^(t/T) / F
        return Quote(
            quote.bid * factor if quote.bid is not None else None,
            quote.ask * factor if quote.ask is not None else None,
        )


@dataclass(slots=True)
class ArbResult:
    opened: int
    closed: int
    still_open: int
    notes: list[str] = field(default_factory=list)


def recorded_universes(
    data_dir: Path, cache_dir: Path | None, symbols: Sequence[str]
) -> list[ChainUniverse]:
    """The chains of ``symbols``, or of every spot the store recorded that has options."""
    # imported here: shriven.universe brings the Kite instruments client (requests) with it
    from shriven.universe.recorded import load_recorded

    instruments, note = instruments_for(cache_dir, data_dir)
    if symbols:
        return [resolve_chain(s, instruments, note) for s in symbols]  # type: ignore[arg-type]
    out: list[ChainUniverse] = []
    seen: set[str] = set()
    for row in load_recorded(Path(data_dir)):
        if row.instrument_type in ("CE", "PE", "FUT") or row.tradingsymbol in seen:
            continue
        seen.add(row.tradingsymbol)
        try:
            out.append(resolve_chain(row.tradingsymbol, instruments, note))  # type: ignore[arg-type]
        except ShrivenError:
            continue
    if not out:
        raise NotRecordedError(
            f"{data_dir} recorded no underlying with options (its instruments.json lists none): "
            "give --symbol 'NIFTY 50' with the instruments cache, or record an option chain"
        )
    return out


def replay_arb(
    data_dir: Path,
    sink: Path | IO[str],
    zone: ZoneInfo,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    symbols: Sequence[str] = (),
    threshold: float = DEFAULT_THRESHOLD,
    rate: float = 0.065,
    fmt: str = "table",
    cache_dir: Path | None = None,
    skip_damaged: bool = False,
    force: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> ArbResult:
    """List every put-call parity violation larger than ``threshold`` rupees after spreads in
    ``[start_ns, end_ns)``: the instant it opened with its size, and when it closed with the
    largest size it reached. ``fmt``: table, jsonl or csv."""
    fmt = fmt.lower()
    if fmt not in ("table", "jsonl", "csv"):
        raise ReplayError(f"unknown --format {fmt!r}: use table, jsonl or csv")
    if not threshold >= 0:
        raise ReplayError(f"bad --threshold {threshold!r}: give rupees, 0 or more")
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise ReplayError("the range is empty: --end must be after --start")
    out = sink if isinstance(sink, Path) else None
    atomic = export.check_out(out, data_dir, force) if out is not None else False
    universes = recorded_universes(data_dir, cache_dir, symbols)
    store = StoreReader(data_dir, strict=not skip_damaged)
    feeds: dict[int, list[tuple[str, ParityFeed]]] = {}
    keys: set[str] = set()
    for u in universes:
        feed = ParityFeed(u, threshold, rate)
        for k in u.keys:
            feeds.setdefault(int(k.partition(":")[2]), []).append((u.underlying, feed))
        keys |= u.keys
    events: list[tuple[str, ParityEvent]] = []
    opened_at: dict[tuple[str, str, float], int] = {}
    with scan_gc():
        for record in store.records(
            Selection(frozenset({"ticks"}), "kite", frozenset(keys)), start_ns, end_ns
        ):
            if type(record) is not KiteTick:
                continue
            for name, feed in feeds.get(record.instrument_token, ()):
                events += ((name, e) for e in feed.apply(record))
    if out is not None:
        with (
            atomic_output(out, 0o644) if atomic else open(out, "wb") as f,
            export.text_view(f) as text,
        ):
            _write(events, fmt, text, zone, opened_at)
    else:
        _write(events, fmt, sink, zone, opened_at)  # type: ignore[arg-type]
    result = ArbResult(
        sum(1 for _n, e in events if e.opened),
        sum(1 for _n, e in events if not e.opened),
        len(opened_at),
    )
    if line := store.skipped():
        result.notes.append(line)
    result.notes.append(
        f"{result.opened} parity violations over {threshold:g} rupees after spreads opened, "
        f"{result.closed} closed, {result.still_open} still open at the end of the range"
    )
    for line in result.notes:
        if on_note is not None:
            on_note(line)
    return result


def _rows(
    events: Iterable[tuple[str, ParityEvent]],
    zone: ZoneInfo,
    opened_at: dict[tuple[str, str, float], int],
) -> Iterable[dict[str, object]]:
    for name, e in events:
        key = (name, e.expiry, e.strike)
        since = None
        if e.opened:
            opened_at[key] = e.at_ns
        else:
            start = opened_at.pop(key, None)
            since = format_ns(start, zone) if start is not None else None
        yield {
            "time": format_ns(e.at_ns, zone),
            "underlying": name,
            "expiry": e.expiry,
            "strike": e.strike,
            "event": "opened" if e.opened else "closed",
            "direction": e.direction,
            "edge": round(e.edge, 6),
            "since": since,
        }


def _write(
    events: list[tuple[str, ParityEvent]],
    fmt: str,
    out: IO[str],
    zone: ZoneInfo,
    opened_at: dict[tuple[str, str, float], int],
) -> None:
    rows = _rows(events, zone, opened_at)
    if fmt == "jsonl":
        for r in rows:
            out.write(json.dumps(r, separators=(",", ":")) + "\n")
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(ARB_COLUMNS)
        for r in rows:
            w.writerow(["" if r[c] is None else r[c] for c in ARB_COLUMNS])
    else:
        out.write(f"{'time':<36} {'underlying':<10} {'expiry':<10} {'strike':>9} {'event':<6} "
                  f"{'direction':<14} {'edge':>9}  since\n")  # fmt: skip
        for r in rows:
            out.write(
                f"{r['time']:<36} {r['underlying']:<10} {r['expiry']:<10} {r['strike']:>9g} "
                f"{r['event']:<6} {r['direction']:<14} {r['edge']:>9.2f}  "
                f"{r['since'] or ''}".rstrip()
                + "\n"
            )
    out.flush()
