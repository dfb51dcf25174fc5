"""An index over the instrument dump for the lookups the universe needs (pure, no I/O)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from shriven.errors import UnknownSymbolError
from shriven.feeds.kite.instruments import Instrument

IST = ZoneInfo("Asia/Kolkata")
# NSE/BSE derivatives stop trading at 15:30 IST on their expiry day.
EXPIRY_CUTOFF_IST = time(15, 30)

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


class InstrumentTable:
    """Spot rows by symbol and derivative rows by underlying name, built in one pass."""

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self.by_token: dict[int, Instrument] = {}
        self.indices: dict[str, Instrument] = {}
        self.equities: dict[str, Instrument] = {}
        self.derivatives: dict[str, list[Instrument]] = {}
        for ins in instruments:
            self.by_token[ins.instrument_token] = ins
            seg = ins.segment
            if seg in DERIVATIVE_SEGMENTS:
                self.derivatives.setdefault(ins.name, []).append(ins)
            elif seg == "INDICES":
                self.indices.setdefault(ins.tradingsymbol.upper(), ins)
            elif seg in SPOT_SEGMENTS and ins.instrument_type == "EQ":
                self.equities.setdefault(ins.tradingsymbol.upper(), ins)
        for ins in list(self.indices.values()):
            if ins.name:
                self.indices.setdefault(ins.name.upper(), ins)

    def __len__(self) -> int:
        return len(self.by_token)

    def resolve_spot(self, symbol: str) -> Instrument:
        """The spot row for ``symbol`` ("NIFTY 50", "NSE:NIFTY BANK", "RELIANCE")."""
        key = symbol.strip().upper()
        if ":" in key:
            key = key.split(":", 1)[1]
        found = self.indices.get(key) or (
            self.equities.get(key) if key in self.derivatives else None
        )
        if found is None:
            raise UnknownSymbolError(self._unknown_message(symbol))
        return found

    def _unknown_message(self, symbol: str) -> str:
        names = sorted({i.tradingsymbol for i in self.indices.values()})
        names += sorted(k for k in self.equities if k in self.derivatives)
        close = difflib.get_close_matches(symbol.strip().upper(), names, n=5, cutoff=0.5)
        if not close:
            close = [n for n in names if n.startswith(symbol.strip().upper()[:3])][:5]
        hint = f"closest: {', '.join(repr(c) for c in close)}" if close else "no close match"
        return (
            f"unknown spot symbol {symbol!r}: the instruments define no such index ({hint}); "
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

    def live_options(self, underlying: str, as_of: datetime) -> list[Instrument]:
        return [
            i
            for i in self.derivatives.get(underlying, ())
            if i.instrument_type in ("CE", "PE") and i.expiry and is_live(i.expiry, as_of)
        ]
