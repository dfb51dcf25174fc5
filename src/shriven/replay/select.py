"""Which records a replay keeps: kinds, venue and symbol selection (pure, no I/O).

``--symbol`` accepts, in this order of interpretation:

1. an instrument token (digits): that Kite instrument;
2. a name the Kite instruments table knows: a trading symbol (``NIFTY25AUGFUT``) selects that
   instrument; an index or stock with derivatives (``NIFTY 50``) selects the spot and every future
   and option whose underlying is it (``NIFTY``);
3. otherwise a Binance symbol (``BTCUSDT``, case-insensitive).

Without the instruments table only 1 and 3 work; a name that can only be a Kite name (it has a
space or a colon) is then an error that says how to get the table.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from shriven.errors import NotRecordedError, ReplayError
from shriven.events import (
    BINANCE_VENUES,
    FUTURES_VENUES,
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
    instrument_key,
)

__all__ = [
    "KINDS",
    "InstrumentRow",
    "RefusedFilter",
    "Selection",
    "closest_recorded",
    "parse_kinds",
    "require_recorded",
    "resolve_each",
    "resolve_symbols",
]

# kind name -> record types; "snapshots" are our book snapshots from lob/, the rest is ticks/.
KINDS: Final[dict[str, tuple[type, ...]]] = {
    "ticks": (KiteTick,),
    "trades": (BinanceTrade, BinanceAggTrade),
    "depth": (BinanceDepth, BinanceDepthSnapshot, BinanceFuturesDepth, BinanceFuturesDepthSnapshot),
    "status": (Status,),
    "snapshots": (BookSnapshot,),
    "tickers": (BinanceBookTicker,),
    "marks": (BinanceMarkPrice,),
    "liquidations": (BinanceForceOrder,),
    "open_interest": (BinanceOpenInterest,),
}
DEFAULT_KINDS: Final = (
    "ticks",
    "trades",
    "depth",
    "status",
    "tickers",
    "marks",
    "liquidations",
    "open_interest",
)
VENUES: Final = ("kite", *BINANCE_VENUES)

# Index names whose derivatives trade under another name (as Kite lists them).
KNOWN_UNDERLYINGS: Final[dict[str, str]] = {
    "NIFTY 50": "NIFTY",
    "NIFTY BANK": "BANKNIFTY",
    "NIFTY FIN SERVICE": "FINNIFTY",
    "NIFTY MID SELECT": "MIDCPNIFTY",
    "NIFTY NEXT 50": "NIFTYNXT50",
}
_DERIVATIVE_SEGMENTS: Final = frozenset({"NFO-FUT", "NFO-OPT", "BFO-FUT", "BFO-OPT"})
_BINANCE_SYMBOL = re.compile(r"^[A-Za-z0-9]{2,30}$")
_FUTURES_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,39}$")


class InstrumentRow(Protocol):
    """The columns of a Kite instrument dump row that symbol selection reads."""

    @property
    def instrument_token(self) -> int: ...
    @property
    def tradingsymbol(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def segment(self) -> str: ...


def parse_kinds(values: Sequence[str] | None) -> frozenset[str]:
    """``["ticks,depth", "status"]`` -> ``{"ticks", "depth", "status"}``; empty -> defaults."""
    kinds: set[str] = set()
    for value in values or ():
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in KINDS:
                raise ReplayError(
                    f"unknown kind {name!r}: use one or more of {', '.join(KINDS)} "
                    "(repeat --kind or separate with commas)"
                )
            kinds.add(name)
    return frozenset(kinds or DEFAULT_KINDS)


@dataclass(slots=True)
class Selection:
    """A compiled filter. ``keys`` empty means every instrument."""

    kinds: frozenset[str] = frozenset(DEFAULT_KINDS)
    venue: str | None = None
    keys: frozenset[str] = frozenset()
    described: list[str] = field(default_factory=list)  # what each --symbol resolved to
    # When a set: every instrument key among the records examined (of the selected kinds), so a
    # --symbol that matched nothing can be answered with the closest instruments recorded.
    seen: set[str] | None = None
    _types: frozenset[type] = frozenset()
    _venues: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.venue is not None and self.venue not in VENUES:
            raise ReplayError(f"unknown venue {self.venue!r}: use {', '.join(VENUES)}")
        self._types = frozenset(t for k in self.kinds for t in KINDS[k])
        self._venues = frozenset(k.split(":", 1)[0] for k in self.keys)

    @property
    def needs_ticks(self) -> bool:
        return bool(self.kinds - {"snapshots"})

    @property
    def needs_lob(self) -> bool:
        return "snapshots" in self.kinds

    def matches(self, record: Record) -> bool:
        if type(record) not in self._types:
            return False
        if self.venue is None and not self.keys:
            return True
        key = instrument_key(record)
        venue, _, instrument = key.partition(":")
        if self.seen is not None and instrument:
            self.seen.add(key)
        if self.venue is not None and venue != self.venue:
            return False
        if not self.keys:
            return True
        if type(record) is Status and not instrument:
            # Venue-wide and system markers (connects, restarts) explain the selected data.
            return venue == "system" or venue in self._venues
        return key in self.keys


def resolve_symbols(
    symbols: Sequence[str], instruments: Iterable[InstrumentRow] | None
) -> tuple[frozenset[str], list[str]]:
    """Instrument keys (``kite:<token>``, ``binance:<SYMBOL>``) for the given --symbol values,
    and a line per symbol saying what it selected."""
    each = resolve_each(symbols, instruments)
    keys = frozenset(k for _text, ks, _what in each for k in ks)
    return keys, [f"{text}: {what}" for text, _ks, what in each]


def resolve_each(
    symbols: Sequence[str], instruments: Iterable[InstrumentRow] | None
) -> list[tuple[str, frozenset[str], str]]:
    """Per --symbol value: the text, its instrument keys and what it selected."""
    index = _Index(instruments) if instruments is not None else None
    out: list[tuple[str, frozenset[str], str]] = []
    for raw in symbols:
        text = raw.strip()
        if not text:
            continue
        if text.isdigit():
            out.append(
                (text, frozenset({f"kite:{int(text)}"}), f"Kite instrument token {int(text)}")
            )
            continue
        if index is not None:
            found = index.lookup(text)
            if found is not None:
                tokens, what = found
                out.append((text, frozenset(f"kite:{t}" for t in tokens), what))
                continue
        venue, sep, contract = text.partition(":")
        if sep and venue.lower() in BINANCE_VENUES and _FUTURES_SYMBOL.match(contract):
            keys = frozenset({f"{venue.lower()}:{contract.upper()}"})
            out.append((text, keys, f"{venue.lower()} symbol {contract.upper()}"))
            continue
        if "_" in text and _FUTURES_SYMBOL.match(text):  # BTCUSD_PERP: a futures contract
            keys = frozenset(f"{v}:{text.upper()}" for v in FUTURES_VENUES)
            out.append((text, keys, f"futures contract {text.upper()}"))
            continue
        if _BINANCE_SYMBOL.match(text):
            note = "" if index is not None else " (no Kite instruments table, so not a Kite name)"
            keys = frozenset({f"binance:{text.upper()}"})
            out.append((text, keys, f"Binance symbol {text.upper()}{note}"))
            continue
        if index is None:
            raise ReplayError(
                f"cannot select {text!r}: Kite names need the cached instruments table, which "
                "was not found; run `shriven instruments fetch` (or pass an instrument token)"
            )
        raise ReplayError(
            f"unknown symbol {text!r}: not a trading symbol or index in the instruments table, "
            "nor a Binance symbol; give e.g. 'NIFTY 50', NIFTY25AUGFUT, 256265 or BTCUSDT"
        )
    return out


# Records held back while some --symbol has matched nothing yet, so that a symbol the store
# never recorded prints nothing at all; past this many the output starts anyway (bounded memory)
# and the error still comes at the end.
_HOLD_BACK: Final = 10_000


def require_recorded(
    records: Iterable[Record],
    wanted: Sequence[tuple[str, frozenset[str], str]],
    selection: Selection,
    where: str,
    instruments: Iterable[InstrumentRow] | None = None,
) -> Iterator[Record]:
    """``records`` (selected by ``selection``, whose ``seen`` is a set), raising
    NotRecordedError at the end when a --symbol of ``wanted`` matched no record: it names the
    symbol and the recorded instruments closest to it. ``where`` says what was read."""
    missing = {text: keys for text, keys, _what in wanted}
    held: list[Record] | None = []
    for record in records:
        if missing:
            key = instrument_key(record)
            for text in [t for t, keys in missing.items() if key in keys]:
                del missing[text]
        if held is None:
            yield record
        elif missing and len(held) < _HOLD_BACK:
            held.append(record)
        else:
            yield from held
            held = None
            yield record
    if missing:
        text = next(iter(missing))
        raise NotRecordedError(
            f"--symbol {text}: no record of it in {where}; {_closest(text, selection, instruments)}"
        )
    if held:
        yield from held


def _closest(text: str, selection: Selection, instruments: Iterable[InstrumentRow] | None) -> str:
    seen = selection.seen or set()
    if not seen:
        return "nothing of the selected kinds was recorded there"
    return closest_recorded(text, seen, instruments)


def closest_recorded(
    text: str, seen: Iterable[str], instruments: Iterable[InstrumentRow] | None
) -> str:
    """The instruments among the keys ``seen`` (``venue:instrument``) closest to ``text``, by
    instrument and Kite trading symbol, as a clause for an error message."""
    seen = set(seen)
    if not seen:
        return "no instrument was recorded there"
    names = {f"kite:{r.instrument_token}": r.tradingsymbol for r in instruments or ()}
    shown: dict[str, str] = {}  # a name to compare with -> how it is shown
    for key in sorted(seen):
        instrument = key.partition(":")[2]
        name = names.get(key)
        shown[instrument.upper()] = f"{name} ({instrument})" if name else instrument
        if name:
            shown[name.upper()] = shown[instrument.upper()]
    close = difflib.get_close_matches(text.upper(), list(shown), n=5, cutoff=0.6)
    picked = list(dict.fromkeys(shown[c] for c in close))[:3]
    if picked:
        return f"recorded instruments closest to it: {', '.join(picked)}"
    sample = ", ".join(list(dict.fromkeys(shown.values()))[:3])
    return f"none of the {len(seen)} instruments recorded there is close (e.g. {sample})"


class _Index:
    def __init__(self, rows: Iterable[InstrumentRow]) -> None:
        self.by_symbol: dict[str, list[InstrumentRow]] = {}
        self.derivatives: dict[str, list[InstrumentRow]] = {}
        self.indices: dict[str, InstrumentRow] = {}
        for row in rows:
            self.by_symbol.setdefault(row.tradingsymbol.upper(), []).append(row)
            if row.segment in _DERIVATIVE_SEGMENTS:
                self.derivatives.setdefault(_underlying_name(row), []).append(row)
            elif row.segment == "INDICES":
                self.indices.setdefault(row.tradingsymbol.upper(), row)
                if row.name:
                    self.indices.setdefault(row.name.upper(), row)

    def lookup(self, text: str) -> tuple[list[int], str] | None:
        key = text.upper()
        exchange = None
        if ":" in key:
            exchange, key = key.split(":", 1)
        spot = self.indices.get(key)
        rows = [
            r
            for r in self.by_symbol.get(key, [])
            if exchange is None or getattr(r, "exchange", exchange) == exchange
        ]
        if spot is None and rows:
            spot = rows[0]
        if spot is None:
            return None
        underlying = self._underlying_of(spot)
        if underlying is None:
            if spot.segment in _DERIVATIVE_SEGMENTS or rows:
                tokens = sorted({r.instrument_token for r in rows} or {spot.instrument_token})
                return tokens, f"{spot.tradingsymbol} ({spot.segment}, token {tokens[0]})"
            return [spot.instrument_token], f"{spot.tradingsymbol} (token {spot.instrument_token})"
        derivs = self.derivatives[underlying]
        tokens = sorted({spot.instrument_token} | {r.instrument_token for r in derivs})
        futs = sum(1 for r in derivs if r.segment.endswith("FUT"))
        return tokens, (
            f"spot {spot.tradingsymbol} (token {spot.instrument_token}) with {futs} futures and "
            f"{len(derivs) - futs} options of {underlying} in the instruments table"
        )

    def _underlying_of(self, spot: InstrumentRow) -> str | None:
        if spot.segment in _DERIVATIVE_SEGMENTS:
            return None
        sym = spot.tradingsymbol.upper()
        parts = sym.split()
        candidates = [KNOWN_UNDERLYINGS.get(sym), sym, sym.replace(" ", "")]
        if len(parts) == 2 and parts[0] == "NIFTY":
            candidates.append(parts[1] + "NIFTY")
        for name in candidates:
            if name and name in self.derivatives:
                return name
        return None


_DERIV_PREFIX = re.compile(r"^([A-Z&-]+?)\d{2}")


def _underlying_name(row: InstrumentRow) -> str:
    """Kite fills ``name`` for derivatives; older dumps left it empty, so fall back to the
    letters before the expiry in the trading symbol (BANKNIFTY18JAN23500CE -> BANKNIFTY)."""
    if row.name:
        return row.name.upper()
    m = _DERIV_PREFIX.match(row.tradingsymbol.upper())
    return m.group(1) if m else row.tradingsymbol.upper()


class RefusedFilter:
    """Drops stored records that today's schema refuses (an older recorder wrote a price "abc"
    or "NaN"), counting them in ``skipped`` so the caller can say so."""

    def __init__(self) -> None:
        # imported here: the Binance parser (msgspec and its schemas) was a tenth of a cold
        # `replay book`'s imports, and the book path never filters records
        from shriven.feeds.binance.parse import record_ok

        self.skipped = 0
        self._ok = record_ok

    def __call__(self, records: Iterable[Record]) -> Iterator[Record]:
        record_ok = self._ok
        for r in records:
            if record_ok(r):
                yield r
            else:
                self.skipped += 1
