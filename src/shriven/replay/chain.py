"""An option chain rebuilt from the tick WAL at an instant, or on a clock grid: quotes, implied
volatility from mid, bid, ask and last, and Black-76 Greeks, the future of the expiry month as
the forward.

The chain of an underlying (``NIFTY 50``) is its spot, its futures and its options as the
instruments table lists them (the cache plus the store's ``instruments.json``). Each leg shows
its latest tick received within ``lookback_ns`` before the instant (a leg with none says "no
quote in range"). The forward of an expiry is the future expiring the same day, or else the
future of the same month carried back to the option's expiry at the carry it implies over spot
(``S (F/S)^(t_option/t_future)``); with no future recorded, ``S e^(r t)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Final, Protocol
from zoneinfo import ZoneInfo

from shriven.analytics import annualised_basis, calendar_basis
from shriven.analytics.expiry import expiry_ns, years_between
from shriven.errors import NotRecordedError, ReplayError
from shriven.events import KiteTick, kite_price_divisor
from shriven.replay.defaults import DEFAULT_LOOKBACK_NS
from shriven.replay.instruments import instruments_for
from shriven.replay.select import InstrumentRow, Selection, resolve_each
from shriven.replay.store import StoreReader
from shriven.replay.times import format_ns
from shriven.wal.gc import scan_gc

__all__ = [
    "CHAIN_COLUMNS",
    "DEFAULT_LOOKBACK_NS",
    "DEFAULT_RATE",
    "ChainLeg",
    "ChainSnapshot",
    "ExpiryChain",
    "chain_snapshots",
    "open_chain",
]

DEFAULT_RATE: Final = 0.065
NO_QUOTE: Final = "no quote in range"


class DerivativeRow(InstrumentRow, Protocol):
    """The columns of a Kite instrument row the chain reads: selection's, plus the contract's."""

    @property
    def expiry(self) -> date | None: ...
    @property
    def strike(self) -> float: ...
    @property
    def instrument_type(self) -> str: ...


@dataclass(slots=True)
class ChainLeg:
    """One option of the chain at the instant. Prices are rupees as decimal text (None: none)."""

    expiry: date
    strike: float
    type: str  # CE or PE
    tradingsymbol: str
    instrument_token: int
    atm: bool = False
    quote_ns: int | None = None  # receive time of the tick shown
    last_price: str | None = None
    bid: str | None = None
    bid_qty: int | None = None
    ask: str | None = None
    ask_qty: int | None = None
    oi: int | None = None
    volume: int | None = None
    iv_mid: float | None = None
    iv_bid: float | None = None
    iv_ask: float | None = None
    iv_last: float | None = None
    delta: float | None = None
    gamma: float | None = None
    theta: float | None = None
    vega: float | None = None
    note: str = ""


@dataclass(slots=True)
class ExpiryChain:
    expiry: date
    years: float  # to 15:30 IST on the expiry day
    forward: float | None
    forward_from: str  # how the forward was found
    future_symbol: str | None
    future_price: str | None
    basis: float | None  # the future over spot, annualised
    legs: list[ChainLeg] = field(default_factory=list)


@dataclass(slots=True)
class ChainSnapshot:
    underlying: str
    at_ns: int
    spot: str | None
    rate: float
    expiries: list[ExpiryChain]
    calendar_basis: float | None  # current vs next month future, annualised


# Output columns of one leg (jsonl, csv, parquet), in order.
CHAIN_COLUMNS: Final[tuple[str, ...]] = (
    "time",
    "underlying",
    "expiry",
    "years",
    "spot",
    "future",
    "forward",
    "strike",
    "type",
    "tradingsymbol",
    "instrument_token",
    "atm",
    "quote_time",
    "last_price",
    "bid",
    "bid_qty",
    "ask",
    "ask_qty",
    "oi",
    "volume",
    "iv_mid",
    "iv_bid",
    "iv_ask",
    "iv_last",
    "delta",
    "gamma",
    "theta",
    "vega",
    "note",
)


def _rupees(price: int, divisor: int) -> str:
    whole, frac = divmod(price, divisor)
    digits = len(str(divisor)) - 1
    return f"{whole}.{frac:0{digits}d}" if digits else str(whole)


@dataclass(slots=True)
class _Latest:
    tick: KiteTick
    divisor: int


@dataclass(slots=True)
class ChainUniverse:
    """What the store's instruments say the chain of ``underlying`` is."""

    underlying: str
    spot_token: int | None
    options: dict[int, DerivativeRow]
    futures: dict[int, DerivativeRow]

    @property
    def keys(self) -> frozenset[str]:
        tokens = {*self.options, *self.futures}
        if self.spot_token is not None:
            tokens.add(self.spot_token)
        return frozenset(f"kite:{t}" for t in tokens)


def resolve_chain(
    text: str, instruments: Sequence[DerivativeRow] | None, inst_note: str
) -> ChainUniverse:
    """The spot, futures and options ``text`` (``NIFTY 50``, ``NIFTY``) selects."""
    if instruments is None:
        raise ReplayError(
            f"cannot find the chain of {text!r}: {inst_note or 'no instruments table'}; run "
            "`shriven instruments fetch` or replay a store that recorded instruments.json"
        )
    wanted = resolve_each([text], instruments)
    by_token = {r.instrument_token: r for r in instruments}
    tokens = [int(k.partition(":")[2]) for _t, ks, _w in wanted for k in ks if k[:5] == "kite:"]
    rows = [by_token[t] for t in tokens if t in by_token]
    options = {
        r.instrument_token: r for r in rows if r.instrument_type in ("CE", "PE") and r.expiry
    }
    futures = {r.instrument_token: r for r in rows if r.instrument_type == "FUT" and r.expiry}
    spots = [r for r in rows if r.instrument_type not in ("CE", "PE", "FUT")]
    if not options:
        raise NotRecordedError(
            f"{text!r} has no options in the instruments table: give an index or stock with "
            "options, e.g. 'NIFTY 50' or 'NIFTY BANK'"
        )
    name = next(iter(options.values())).name or text
    return ChainUniverse(name, spots[0].instrument_token if spots else None, options, futures)


def _quote(t: _Latest | None, side: str) -> tuple[float, int] | None:
    if t is None:
        return None
    levels = t.tick.bids if side == "bid" else t.tick.asks
    if not levels or not levels[0][0] or not levels[0][1]:
        return None
    return levels[0][0] / t.divisor, levels[0][1]


def _mid(t: _Latest | None) -> float | None:
    b, a = _quote(t, "bid"), _quote(t, "ask")
    if b is None or a is None:
        return None
    return 0.5 * (b[0] + a[0])


def _price_of(t: _Latest | None) -> float | None:
    """Mid when both sides are quoted, else the last price."""
    if t is None:
        return None
    m = _mid(t)
    if m is not None:
        return m
    return t.tick.last_price / t.divisor if t.tick.last_price else None


class ChainState:
    """The latest tick of every leg, and the chain computed from them at an instant."""

    def __init__(self, universe: ChainUniverse, rate: float, lookback_ns: int) -> None:
        self.universe = universe
        self.rate = rate
        self.lookback_ns = lookback_ns
        self.latest: dict[int, _Latest] = {}

    def apply(self, tick: KiteTick) -> None:
        token = tick.instrument_token
        self.latest[token] = _Latest(tick, kite_price_divisor(token))

    def fresh(self, token: int | None, at_ns: int) -> _Latest | None:
        if token is None:
            return None
        t = self.latest.get(token)
        if t is None or t.tick.recv_ns < at_ns - self.lookback_ns or t.tick.recv_ns > at_ns:
            return None
        return t

    def recorded_expiries(self, at_ns: int) -> list[date]:
        """Expiries not yet past at ``at_ns`` with at least one option tick seen so far."""
        opts = self.universe.options
        days = {opts[t].expiry for t in self.latest if t in opts}
        return sorted(d for d in days if d and expiry_ns(d) > at_ns)

    def snapshot(self, at_ns: int, expiries: Sequence[date]) -> ChainSnapshot:
        u = self.universe
        spot_t = self.fresh(u.spot_token, at_ns)
        spot = (
            spot_t.tick.last_price / spot_t.divisor if spot_t and spot_t.tick.last_price else None
        )
        futures = sorted(
            (r for r in u.futures.values() if r.expiry and expiry_ns(r.expiry) > at_ns),
            key=lambda r: r.expiry,  # type: ignore[arg-type, return-value]
        )
        out = [self._expiry(at_ns, e, spot, futures) for e in expiries]
        cal = None
        quoted = [
            (r, p) for r in futures if (p := _price_of(self.fresh(r.instrument_token, at_ns)))
        ]
        if len(quoted) >= 2:
            (r1, p1), (r2, p2) = quoted[0], quoted[1]
            cal = calendar_basis(
                p1,
                p2,
                years_between(at_ns, expiry_ns(r1.expiry)),  # type: ignore[arg-type]
                years_between(at_ns, expiry_ns(r2.expiry)),  # type: ignore[arg-type]
            )
        spot_text = _rupees(spot_t.tick.last_price, spot_t.divisor) if spot is not None else None
        return ChainSnapshot(u.underlying, at_ns, spot_text, self.rate, out, cal)  # type: ignore[arg-type]

    def _forward(
        self,
        at_ns: int,
        expiry: date,
        years: float,
        spot: float | None,
        futures: list[DerivativeRow],
    ) -> tuple[float | None, str, DerivativeRow | None, _Latest | None]:
        same_day = [r for r in futures if r.expiry == expiry]
        same_month = [
            r
            for r in futures
            if r.expiry and (r.expiry.year, r.expiry.month) == (expiry.year, expiry.month)
        ]
        for rows in (same_day, same_month):
            for r in rows:
                t = self.fresh(r.instrument_token, at_ns)
                f = _price_of(t)
                if f is None:
                    continue
                if r.expiry == expiry:
                    return f, f"future {r.tradingsymbol}", r, t
                t_fut = years_between(at_ns, expiry_ns(r.expiry))  # type: ignore[arg-type]
                if spot is not None and t_fut > 0:
                    fwd = spot * (f / spot) ** (years / t_fut)
                    return fwd, f"future {r.tradingsymbol} carried back to the expiry", r, t
                return f, f"future {r.tradingsymbol} (no spot to carry it back)", r, t
        if spot is not None:
            return (
                spot * math.exp(self.rate * years),
                "spot at the rate (no future quoted)",
                None,
                None,
            )
        return None, "no future nor spot quoted in range", None, None

    def _expiry(
        self, at_ns: int, expiry: date, spot: float | None, futures: list[DerivativeRow]
    ) -> ExpiryChain:
        # Imported here: the live parity watch of every Kite `run` uses this module for its
        # universe and forward, never the IV; numpy and scipy were most of a run's start-up.
        import numpy as np

        from shriven.analytics import REASONS, greeks, implied_vol

        years = years_between(at_ns, expiry_ns(expiry))
        fwd, how, fut_row, fut_t = self._forward(at_ns, expiry, years, spot, futures)
        fut_price = None
        basis = None
        if fut_t is not None and fut_row is not None:
            fut_price = _rupees(fut_t.tick.last_price, fut_t.divisor)
            f = _price_of(fut_t)
            if f is not None and spot is not None:
                basis = annualised_basis(
                    f,
                    spot,
                    years_between(at_ns, expiry_ns(fut_row.expiry)),  # type: ignore[arg-type]
                )
        rows = sorted(
            (r for r in self.universe.options.values() if r.expiry == expiry),
            key=lambda r: (r.strike, r.instrument_type),
        )
        chain = ExpiryChain(
            expiry, years, fwd, how, fut_row.tradingsymbol if fut_row else None, fut_price, basis
        )
        n = len(rows)
        prices = np.full((4, n), np.nan)  # mid, bid, ask, last
        strikes = np.array([r.strike for r in rows], dtype=np.float64)
        calls = np.array([r.instrument_type == "CE" for r in rows], dtype=bool)
        for i, r in enumerate(rows):
            leg = ChainLeg(expiry, r.strike, r.instrument_type, r.tradingsymbol, r.instrument_token)
            chain.legs.append(leg)
            t = self.fresh(r.instrument_token, at_ns)
            if t is None:
                leg.note = NO_QUOTE
                continue
            tick = t.tick
            leg.quote_ns = tick.recv_ns
            leg.last_price = _rupees(tick.last_price, t.divisor) if tick.last_price else None
            leg.oi = tick.oi
            leg.volume = tick.volume_traded
            b, a = _quote(t, "bid"), _quote(t, "ask")
            if b is not None:
                leg.bid, leg.bid_qty = _rupees(tick.bids[0][0], t.divisor), b[1]
                prices[1, i] = b[0]
            if a is not None:
                leg.ask, leg.ask_qty = _rupees(tick.asks[0][0], t.divisor), a[1]
                prices[2, i] = a[0]
            if b is not None and a is not None:
                prices[0, i] = 0.5 * (b[0] + a[0])
            if tick.last_price:
                prices[3, i] = tick.last_price / t.divisor
        if n == 0 or fwd is None or years <= 0:
            note = "expired" if years <= 0 else how
            for leg in chain.legs:
                leg.note = leg.note or f"no IV: {note}"
            return chain
        atm = float(strikes[np.argmin(np.abs(strikes - fwd))])
        iv = implied_vol(prices, fwd, strikes, years, calls, self.rate)
        g = greeks(fwd, strikes, years, iv.vol[0], calls, self.rate)
        for i, leg in enumerate(chain.legs):
            leg.atm = leg.strike == atm
            leg.iv_mid, leg.iv_bid, leg.iv_ask, leg.iv_last = (_num(iv.vol[j, i]) for j in range(4))
            leg.delta, leg.gamma, leg.theta, leg.vega = (
                _num(g.delta[i]),
                _num(g.gamma[i]),
                _num(g.theta[i]),
                _num(g.vega[i]),
            )
            if not leg.note and leg.iv_mid is None:
                code = int(iv.reason[0, i])
                leg.note = (
                    f"no mid IV: {REASONS[code]}" if code else "no mid IV: no two-sided quote"
                )
        return chain


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


@dataclass(slots=True)
class ChainRun:
    """An opened chain request: the store, the universe, the notes so far."""

    store: StoreReader
    universe: ChainUniverse
    rate: float
    lookback_ns: int
    expiry: str
    notes: list[str] = field(default_factory=list)
    selected: list[date] = field(default_factory=list)  # what --expiry chose, at the first instant


def open_chain(
    data_dir: Path,
    underlying: str,
    *,
    rate: float = DEFAULT_RATE,
    lookback_ns: int = DEFAULT_LOOKBACK_NS,
    expiry: str = "current",
    cache_dir: Path | None = None,
    skip_damaged: bool = False,
) -> ChainRun:
    instruments, note = instruments_for(cache_dir, data_dir)
    universe = resolve_chain(underlying, instruments, note)  # type: ignore[arg-type]
    store = StoreReader(data_dir, strict=not skip_damaged)
    _check_expiry_text(expiry)
    return ChainRun(store, universe, rate, lookback_ns, expiry.strip().lower())


def _check_expiry_text(text: str) -> None:
    t = text.strip().lower()
    if t in ("current", "next", "all"):
        return
    try:
        date.fromisoformat(t)
    except ValueError:
        raise ReplayError(
            f"bad --expiry {text!r}: use current, next, all or a date such as 2026-12-29"
        ) from None


def pick_expiries(wanted: str, recorded: Sequence[date], where: str) -> list[date]:
    if not recorded:
        raise NotRecordedError(f"no options recorded {where}")
    if wanted == "all":
        return list(recorded)
    if wanted == "current":
        return [recorded[0]]
    listed = ", ".join(e.isoformat() for e in recorded)
    if wanted == "next":
        if len(recorded) < 2:
            raise NotRecordedError(
                f"--expiry next: only one expiry was recorded {where} ({listed})"
            )
        return [recorded[1]]
    day = date.fromisoformat(wanted)
    if day not in recorded:
        raise NotRecordedError(
            f"--expiry {wanted}: no option of that expiry was recorded {where}; recorded: {listed}"
        )
    return [day]


def chain_snapshots(
    run: ChainRun,
    instants: Sequence[int],
    zone: ZoneInfo,
    on_first: Callable[[], None] | None = None,
) -> Iterator[ChainSnapshot]:
    """The chain at each of ``instants`` (ascending), from one pass over the store."""
    if not instants:
        return
    store = run.store
    _inside_store(store, instants[0], instants[-1], zone, run.lookback_ns)
    state = ChainState(run.universe, run.rate, run.lookback_ns)
    selection = Selection(frozenset({"ticks"}), "kite", run.universe.keys)
    start = instants[0] - run.lookback_ns
    end = instants[-1] + 1
    span = f"in [{format_ns(start, zone)}, {format_ns(instants[-1], zone)}]"
    chosen: list[date] | None = None
    where = f"for {run.universe.underlying} {span}"
    i = 0
    with scan_gc():
        records = store.records(selection, start, end)
        while i < len(instants):
            record = next(records, None)
            at = instants[i]
            if record is not None and type(record) is not KiteTick:
                continue
            if record is not None and record.recv_ns <= at:
                state.apply(record)  # type: ignore[arg-type]
                continue
            while i < len(instants) and (record is None or record.recv_ns > instants[i]):
                if chosen is None:
                    recorded = state.recorded_expiries(instants[i])
                    if recorded or i == len(instants) - 1:
                        run.selected = pick_expiries(run.expiry, recorded, where)
                        chosen = recorded
                # a series may start before the first option ticks: those instants have no legs
                yield state.snapshot(instants[i], chosen or [])
                i += 1
            if record is not None:
                state.apply(record)  # type: ignore[arg-type]
    if line := store.skipped():
        run.notes.append(line)


def _inside_store(
    store: StoreReader, first_ns: int, last_ns: int, zone: ZoneInfo, lookback_ns: int
) -> None:
    """Refuse instants before the store's first record or beyond its last by more than the
    lookback (where every quote would be out of range)."""
    from shriven.wal.check import wal_stats

    st = wal_stats("ticks", store.data_dir / "ticks")
    if st.first_ns is None or st.last_ns is None:
        raise NotRecordedError(f"{store.data_dir} holds no records yet")
    if last_ns < st.first_ns or first_ns > st.last_ns + lookback_ns:
        raise NotRecordedError(
            f"{format_ns(first_ns, zone)} is outside the store: {store.data_dir} holds records "
            f"from {format_ns(st.first_ns, zone)} to {format_ns(st.last_ns, zone)} (times "
            f"without an offset are in {zone.key})"
        )
