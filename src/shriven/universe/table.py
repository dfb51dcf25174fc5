"""An index over the instrument dump for the lookups the universe needs (pure, no I/O)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import TypeVar

from shriven.analytics.expiry import EXPIRY_CUTOFF_IST
from shriven.clock import IST
from shriven.errors import UnknownSymbolError
from shriven.feeds.kite.instruments import Instrument

V = TypeVar("V")

# Index names whose derivatives trade under another name. Anything else is derived (see
# InstrumentTable.underlying_of): stocks and SENSEX-like indices use their own symbol.
KNOWN_UNDERLYINGS: dict[str, str] = {
    "NIFTY 50": "NIFTY",
    "NIFTY BANK": "BANKNIFTY",
    "NIFTY FIN SERVICE": "FINNIFTY",
    "NIFTY MID SELECT": "MIDCPNIFTY",
    "NIFTY NEXT 50": "NIFTYNXT50",
}
DERIVATIVE_SEGMENTS = frozenset({"NFO-FUT", "NFO-OPT", "BFO-FUT", "BFO-OPT"})
SPOT_SEGMENTS = frozenset({"INDICES", "NSE", "BSE"})


def is_live(expiry: date, as_of: datetime) -> bool:
    """True until 15:30 IST on the expiry date."""
    return as_of < datetime.combine(expiry, EXPIRY_CUTOFF_IST, tzinfo=IST)


SPOT_EXCHANGES = ("NSE", "BSE")


def qualified_symbol(spot: Instrument) -> str:
    """``NSE:NIFTY 50``: the symbol that resolves back to exactly this spot row."""
    return f"{spot.exchange}:{spot.tradingsymbol}"


class InstrumentTable:
    """Spot rows by symbol and derivative rows by underlying name, built in one pass."""

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self.by_token: dict[int, Instrument] = {}
        self.indices: dict[str, list[Instrument]] = {}  # by tradingsymbol and by name
        self.equities: dict[str, list[Instrument]] = {}  # by tradingsymbol, every exchange
        self.derivatives: dict[str, list[Instrument]] = {}
        for ins in instruments:
            self.by_token[ins.instrument_token] = ins
            seg = ins.segment
            if seg in DERIVATIVE_SEGMENTS:
                self.derivatives.setdefault(ins.name, []).append(ins)
            elif seg == "INDICES":
                for key in {ins.tradingsymbol.upper(), ins.name.upper()} - {""}:
                    self.indices.setdefault(key, []).append(ins)
            elif seg in SPOT_SEGMENTS and ins.instrument_type == "EQ":
                self.equities.setdefault(ins.tradingsymbol.upper(), []).append(ins)

    def __len__(self) -> int:
        return len(self.by_token)

    def resolve_spot(self, symbol: str) -> Instrument:
        """The spot row for ``symbol`` ("NIFTY 50", "nse:nifty bank", "BSE:RELIANCE"): the one
        resolution of a symbol that every command, setting and price override goes through.

        An exchange prefix chooses the exchange; without one an index is preferred to a stock of
        the same name, and NSE's row to BSE's. A stock counts only if it has derivatives."""
        text = symbol.strip().upper()
        exchange, _, key = text.rpartition(":")
        exchange, key = exchange.strip(), key.strip()
        if exchange and exchange not in SPOT_EXCHANGES:
            raise UnknownSymbolError(
                f"unknown exchange {exchange!r} in {symbol!r}: use NSE: or BSE: (or no prefix)"
            )
        rows = [
            *self.indices.get(key, ()),
            *(self.equities.get(key, ()) if key in self.derivatives else ()),
        ]
        if exchange:
            elsewhere = sorted({r.exchange for r in rows} - {exchange})
            rows = [r for r in rows if r.exchange == exchange]
            if not rows and elsewhere:
                raise UnknownSymbolError(
                    f"{key!r} is not listed on {exchange}, only on {', '.join(elsewhere)}: "
                    f"write {elsewhere[0]}:{key}"
                )
        if not rows:
            raise UnknownSymbolError(self._unknown_message(symbol, key))
        return min(
            rows,
            key=lambda r: (
                r.tradingsymbol.upper() != key,
                r.segment != "INDICES",
                r.exchange != "NSE",
            ),
        )

    def resolve_spots(self, symbols: Iterable[str]) -> list[Instrument]:
        """The spot rows of ``symbols`` in order, each once however often it is spelled."""
        rows = {}
        for symbol in symbols:
            spot = self.resolve_spot(symbol)
            rows.setdefault(spot.instrument_token, spot)
        return list(rows.values())

    def spot_keyed(self, values: Mapping[str, V]) -> dict[int, V]:
        """``{symbol as typed: value}`` -> ``{spot token: value}``, each key resolved by
        :meth:`resolve_spot`, so "nifty 50", "NSE:NIFTY 50" and "NIFTY 50" are one key."""
        return {self.resolve_spot(k).instrument_token: v for k, v in values.items()}

    def _unknown_message(self, symbol: str, key: str) -> str:
        names = sorted({i.tradingsymbol for rows in self.indices.values() for i in rows})
        names += sorted(k for k in self.equities if k in self.derivatives)
        close = difflib.get_close_matches(key, names, n=5, cutoff=0.5)
        if not close:
            close = [n for n in names if n.startswith(key[:3])][:5]
        hint = f"closest: {', '.join(repr(c) for c in close)}" if close else "no close match"
        return (
            f"unknown spot symbol {symbol.strip()!r}: the instruments define no such index "
            f"({hint}); "
            "give the index name as Kite lists it, e.g. 'NIFTY 50'"
        )

    def underlying_of(self, spot: Instrument) -> str:
        """The name the spot's futures and options trade under (NIFTY 50 -> NIFTY)."""
        candidates = [
            KNOWN_UNDERLYINGS.get(spot.tradingsymbol.upper()),
            spot.tradingsymbol.upper(),
            spot.tradingsymbol.upper().replace(" ", ""),
        ]
        parts = spot.tradingsymbol.upper().split()
        if len(parts) == 2 and parts[0] == "NIFTY":
            candidates.append(parts[1] + "NIFTY")  # NIFTY BANK -> BANKNIFTY pattern
        for name in candidates:
            if name and name in self.derivatives:
                return name
        raise UnknownSymbolError(
            f"no futures or options found for {spot.tradingsymbol!r} in the instruments; "
            "record an index with derivatives (e.g. 'NIFTY 50', 'NIFTY BANK') or refresh with "
            "`shriven instruments fetch --force`"
        )

    def live_futures(self, underlying: str, as_of: datetime) -> list[Instrument]:
        rows = [
            i
            for i in self.derivatives.get(underlying, ())
            if i.instrument_type == "FUT" and i.expiry and is_live(i.expiry, as_of)
        ]
        return sorted(rows, key=lambda i: (i.expiry, i.exchange != "NFO"))

    def listed_futures(self, underlying: str) -> list[Instrument]:
        """Every futures row of ``underlying``, live or expired."""
        return [i for i in self.derivatives.get(underlying, ()) if i.instrument_type == "FUT"]

    def lists_options(self, underlying: str) -> bool:
        """True if the dump lists any option of ``underlying``, live or expired."""
        return any(i.instrument_type in ("CE", "PE") for i in self.derivatives.get(underlying, ()))

    def live_options(self, underlying: str, as_of: datetime) -> list[Instrument]:
        return [
            i
            for i in self.derivatives.get(underlying, ())
            if i.instrument_type in ("CE", "PE") and i.expiry and is_live(i.expiry, as_of)
        ]
