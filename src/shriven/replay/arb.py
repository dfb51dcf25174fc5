"""Put-call parity violations in recorded (or live) Kite ticks, after spreads: the feed that turns
ticks into :class:`~shriven.analytics.ParityEvent` s, and ``replay_arb`` which lists them for a
time range, with the Binance spot against perpetual basis deviations (replay/basis.py) beside
them. The live pipeline runs the same feeds behind taps (app/parity_tap.py, app/basis_tap.py).

The hedge of an expiry is the future expiring the same day; for a weekly expiry, the future of
the same month with its bid and ask carried back to the expiry at the carry it implies over spot
(as the chain's forward, see replay/chain.py), which needs a spot tick.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Final
from zoneinfo import ZoneInfo

from shriven.analytics import ParityEvent, ParityWatch, Quote
from shriven.analytics.basis import BasisEvent, periods_per_year
from shriven.analytics.expiry import expiry_ns, years_between
from shriven.errors import NotRecordedError, ReplayError, ShrivenError
from shriven.events import KiteTick, kite_price_divisor
from shriven.files import atomic_output
from shriven.replay import export
from shriven.replay.basis import BasisFeed, spot_of_perpetual
from shriven.replay.chain import ChainUniverse, DerivativeRow, resolve_chain
from shriven.replay.instruments import instruments_for
from shriven.replay.select import Selection
from shriven.replay.store import StoreReader
from shriven.replay.times import format_ns
from shriven.wal.gc import scan_gc

__all__ = [
    "ARB_COLUMNS",
    "DEFAULT_BASIS_THRESHOLD",
    "DEFAULT_THRESHOLD",
    "ArbResult",
    "ParityFeed",
    "replay_arb",
]

DEFAULT_THRESHOLD: Final = 0.0
DEFAULT_BASIS_THRESHOLD: Final = 0.0  # basis points of the spot mid
# Parity rows fill the first eight (edge in rupees); basis rows all of them (edge in basis
# points; underlying the spot symbol, contract the perpetual, expiry and strike empty).
ARB_COLUMNS: Final = (
    "time", "underlying", "expiry", "strike", "event", "direction", "edge", "since",
    "check", "unit", "contract", "basis_bps", "annualised", "funding_rate",
    "funding_annualised", "next_funding",
)  # fmt: skip
_BINANCE_NAME: Final = re.compile(r"[A-Z0-9]{2,20}(_[A-Z0-9]{2,20})?")
Event = tuple[str, ParityEvent] | BasisEvent


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
    basis_threshold: float = DEFAULT_BASIS_THRESHOLD,
    rate: float = 0.065,
    fmt: str = "table",
    cache_dir: Path | None = None,
    skip_damaged: bool = False,
    force: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> ArbResult:
    """List every put-call parity violation larger than ``threshold`` rupees after spreads, and
    every Binance spot against perpetual basis deviation larger than ``basis_threshold`` basis
    points after both spreads, in ``[start_ns, end_ns)``: the instant each opened with its
    size, and when it closed with the largest size it reached. ``symbols``: Kite underlyings,
    or Binance spot or perpetual symbols (default: everything recorded). ``fmt``: table, jsonl
    or csv."""
    fmt = fmt.lower()
    if fmt not in ("table", "jsonl", "csv"):
        raise ReplayError(f"unknown --format {fmt!r}: use table, jsonl or csv")
    if not threshold >= 0:
        raise ReplayError(f"bad --threshold {threshold!r}: give rupees, 0 or more")
    if not basis_threshold >= 0:
        raise ReplayError(
            f"bad --basis-threshold {basis_threshold!r}: give basis points, 0 or more"
        )
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise ReplayError("the range is empty: --end must be after --start")
    out = sink if isinstance(sink, Path) else None
    atomic = export.check_out(out, data_dir, force) if out is not None else False
    universes, binance_names, missing = _chains(data_dir, cache_dir, symbols)
    store = StoreReader(data_dir, strict=not skip_damaged)
    feeds: dict[int, list[tuple[str, ParityFeed]]] = {}
    for u in universes:
        feed = ParityFeed(u, threshold, rate)
        for k in u.keys:
            feeds.setdefault(int(k.partition(":")[2]), []).append((u.underlying, feed))
    basis = _basis_feed(data_dir, basis_threshold, binance_names)
    with_basis = not symbols or bool(binance_names)  # --symbol 'NIFTY 50' alone: Kite only
    events: list[Event] = []
    kinds = {"ticks"} if feeds else set()
    if with_basis:
        kinds |= {"depth", "status", "tickers", "marks"}
    with scan_gc():
        for record in store.records(Selection(frozenset(kinds)), start_ns, end_ns):
            if type(record) is KiteTick:
                for name, parity in feeds.get(record.instrument_token, ()):
                    events += ((name, e) for e in parity.apply(record))
            else:
                events += basis.apply(record)
    pairs = {p: s for p, s in basis.perps.items() if s is not None}
    if binance_names:
        pairs = {p: s for p, s in pairs.items() if _named(p, s, binance_names)}
        events = [e for e in events if type(e) is not BasisEvent or e.perp in pairs]
    if not universes and not pairs:
        if missing is not None:
            raise missing
        raise NotRecordedError(
            f"{data_dir} recorded nothing to check in the range: no underlying with options "
            "(its instruments.json lists none) and no Binance perpetual; record an option chain "
            "or a perpetual with its spot pair, or give --symbol 'NIFTY 50' with the "
            "instruments cache"
        )
    if out is not None:
        with (
            atomic_output(out, 0o644) if atomic else open(out, "wb") as f,
            export.text_view(f) as text,
        ):
            _write(events, fmt, text, zone)
    else:
        _write(events, fmt, sink, zone)  # type: ignore[arg-type]
    parity = [e for _n, e in (x for x in events if type(x) is tuple)]
    based = [e for e in events if type(e) is BasisEvent]
    opened = sum(1 for e in parity if e.opened) + sum(1 for e in based if e.opened)
    closed = len(parity) + len(based) - opened
    result = ArbResult(opened, closed, opened - closed)
    if line := store.skipped():
        result.notes.append(line)
    if universes:
        opened = sum(1 for e in parity if e.opened)
        closed = len(parity) - opened
        result.notes.append(
            f"{opened} parity violations over {threshold:g} rupees after spreads opened, "
            f"{closed} closed, {opened - closed} still open at the end of the range"
        )
    if pairs:
        result.notes += _basis_notes(basis, pairs, based, basis_threshold, zone)
    for line in result.notes:
        if on_note is not None:
            on_note(line)
    return result


def _chains(
    data_dir: Path, cache_dir: Path | None, symbols: Sequence[str]
) -> tuple[list[ChainUniverse], set[str], NotRecordedError | None]:
    """The Kite chains to check, the Binance names given (empty: all) and, when no chain was
    found, why (raised only if no Binance perpetual is found either)."""
    if not symbols:
        try:
            return recorded_universes(data_dir, cache_dir, ()), set(), None
        except NotRecordedError:
            return [], set(), None
    chains: list[ChainUniverse] = []
    binance: set[str] = set()
    missing: NotRecordedError | None = None
    for name in symbols:
        try:
            chains += recorded_universes(data_dir, cache_dir, (name,))
        except ShrivenError as exc:
            if not _BINANCE_NAME.fullmatch(name):
                raise
            binance.add(name)
            if missing is None:
                missing = NotRecordedError(f"{exc}; nor is {name} a recorded Binance perpetual")
    return chains, binance, missing


def _basis_feed(data_dir: Path, threshold_bps: float, names: set[str]) -> BasisFeed:
    # imported here: shriven.universe brings the Kite instruments client (requests) with it
    from shriven.universe.binance_recorded import load_listings

    spots: set[str] | None = None
    if names:
        spots = set(names)
        for venue in ("binance-usdm", "binance-coinm"):
            spots |= {s for n in names if (s := spot_of_perpetual(venue, n)) is not None}
    return BasisFeed(threshold_bps, load_listings(Path(data_dir)), spots)


def _named(perp: str, spot: str, names: set[str]) -> bool:
    return perp.partition(":")[2] in names or spot.partition(":")[2] in names


def _basis_notes(
    feed: BasisFeed,
    pairs: dict[str, str],
    events: list[BasisEvent],
    threshold_bps: float,
    zone: ZoneInfo,
) -> list[str]:
    """One line per perpetual whose spot was not recorded, per pair without a funding rate, the
    funding of the others at the end of the range, and the counts."""
    notes: list[str] = []
    checked = 0
    for perp, spot in sorted(pairs.items()):
        venue = perp.partition(":")[0]
        if spot not in feed.spot_seen:
            notes.append(
                f"{perp}: a perpetual with no spot recorded ({spot} has no records in the range): "
                f"no basis; record {spot.partition(':')[2]} too (SHRIVEN_BINANCE_SYMBOLS)"
            )
            continue
        checked += 1
        if perp not in feed.funded:
            setting = f"SHRIVEN_{venue.upper().replace('-', '_')}_STREAMS"
            notes.append(
                f"{perp}: no funding rate recorded (no markPrice records in the range): basis "
                f"against {spot} without funding; add markPrice to {setting}"
            )
            continue
        f = feed.watch.funding[perp]
        per_year = periods_per_year(f.interval_ms)
        rate = f.rate or 0.0
        when = format_ns(f.next_ms * 1_000_000, zone) if f.next_ms else "unknown"
        notes.append(
            f"{perp} against {spot}: funding {rate * 100:.4f}% per {f.interval_ms / 3.6e6:g} h "
            f"({rate * per_year * 100:.2f}% a year) at the end of the range, next at {when}"
        )
    if checked:
        opened = sum(1 for e in events if e.opened)
        closed = len(events) - opened
        notes.append(
            f"{opened} basis deviations over {threshold_bps:g} bps after spreads opened, "
            f"{closed} closed, {opened - closed} still open at the end of the range"
        )
    return notes


def _rows(events: Iterable[Event], zone: ZoneInfo) -> Iterable[dict[str, object]]:
    opened_at: dict[tuple[str, str, float] | str, int] = {}
    for event in events:
        if type(event) is BasisEvent:
            yield _basis_row(event, zone, opened_at)
            continue
        name, e = event  # type: ignore[misc]
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
            "check": "parity",
            "unit": "rupees",
        }


def _basis_row(
    e: BasisEvent, zone: ZoneInfo, opened_at: dict[tuple[str, str, float] | str, int]
) -> dict[str, object]:
    since = None
    if e.opened:
        opened_at[e.perp] = e.at_ns
    else:
        start = opened_at.pop(e.perp, None)
        since = format_ns(start, zone) if start is not None else None

    def r(x: float | None, digits: int) -> float | None:
        return None if x is None else round(x, digits)

    return {
        "time": format_ns(e.at_ns, zone),
        "underlying": e.spot.partition(":")[2],
        "expiry": None,
        "strike": None,
        "event": "opened" if e.opened else "closed",
        "direction": e.direction,
        "edge": round(e.edge_bps, 4),
        "since": since,
        "check": "basis",
        "unit": "bps",
        "contract": e.perp,
        "basis_bps": r(e.mid_bps, 4),
        "annualised": r(e.annualised, 8),
        "funding_rate": r(e.funding_rate, 8),
        "funding_annualised": r(e.funding_annualised, 8),
        "next_funding": format_ns(e.next_funding_ms * 1_000_000, zone)
        if e.next_funding_ms
        else None,
    }


def _write(events: list[Event], fmt: str, out: IO[str], zone: ZoneInfo) -> None:
    events = sorted(events, key=lambda e: e.at_ns if type(e) is BasisEvent else e[1].at_ns)  # type: ignore[union-attr]
    rows = _rows(events, zone)
    if fmt == "jsonl":
        for r in rows:
            out.write(json.dumps(r, separators=(",", ":")) + "\n")
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(ARB_COLUMNS)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r[c] for c in ARB_COLUMNS])
    else:
        out.write(f"{'time':<36} {'underlying':<10} {'expiry':<10} {'strike':>9} {'event':<6} "
                  f"{'direction':<14} {'edge':>9}  since\n")  # fmt: skip
        for r in rows:
            if r["check"] == "basis":
                # the perpetual in the expiry and strike columns, the edge in basis points
                head = f"{r['contract']:<20} {r['event']:<6} {r['direction']:<14} "
                edge = f"{r['edge']:>5.2f}bp"
            else:
                head = f"{r['expiry']:<10} {r['strike']:>9g} {r['event']:<6} {r['direction']:<14} "
                edge = f"{r['edge']:>9.2f}"
            out.write(
                f"{r['time']:<36} {r['underlying']:<10} {head}{edge:>9}  "
                f"{r['since'] or ''}".rstrip()
                + "\n"
            )
    out.flush()
