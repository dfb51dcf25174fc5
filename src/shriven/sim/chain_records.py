"""A recorded option chain without the network: Kite full ticks of a spot, its futures and its
options, every one priced from the same volatility surface as the simulator's (sim/surface.py),
for tests and benchmarks that need a known chain (a day of it, or one planted violation).

The spot walks; at every ``step_ns`` each instrument gets one tick quoted like the ticker
simulator's (bid at or under the surface price, ask a tick above). A :class:`Plant` adds
``rupees`` to a call's quotes for a while: a put-call parity violation of known size and time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date

from shriven.analytics.expiry import expiry_ns
from shriven.events import KITE_SEGMENT_INDICES, KiteTick, kite_price_divisor
from shriven.feeds.kite.instruments import Instrument
from shriven.sim.kite_instruments import DEFAULT_INDICES, IndexSpec, generate_instruments
from shriven.sim.surface import DEFAULT_SURFACE, PricedInstrument, VolSurface

__all__ = ["Plant", "chain_instruments", "chain_ticks"]


@dataclass(frozen=True, slots=True)
class Plant:
    token: int  # the call whose quotes are lifted
    start_ns: int
    end_ns: int
    rupees: float


def chain_instruments(
    today: date, underlyings: Sequence[str] = ("NIFTY",), strikes: int = 20, expiries: int = 2
) -> list[Instrument]:
    """Spot, futures and the nearest ``expiries`` expiries' options within ``strikes`` strikes of
    the spec's price, for each underlying."""
    specs = [s for s in DEFAULT_INDICES if s.underlying in underlyings]
    rows = generate_instruments(today, specs)
    out: list[Instrument] = []
    for spec in specs:
        mine = [r for r in rows if r.name == spec.underlying]
        opt_expiries = sorted({r.expiry for r in mine if r.instrument_type in ("CE", "PE")})
        keep = set(opt_expiries[:expiries])
        lo = spec.spot_price - strikes * spec.strike_interval
        hi = spec.spot_price + strikes * spec.strike_interval
        out += [r for r in rows if r.instrument_token == spec.instrument_token]
        out += [r for r in mine if r.instrument_type == "FUT"][:2]
        out += [
            r
            for r in mine
            if r.instrument_type in ("CE", "PE") and r.expiry in keep and lo <= r.strike <= hi
        ]
    return out


def _spec(token: int) -> IndexSpec:
    return next(s for s in DEFAULT_INDICES if s.instrument_token == token)


def chain_ticks(
    instruments: Sequence[Instrument],
    start_ns: int,
    end_ns: int,
    step_ns: int,
    *,
    surface: VolSurface = DEFAULT_SURFACE,
    seed: int = 1,
    spot_vol: float = 0.0002,
    plant: Plant | None = None,
) -> Iterator[KiteTick]:
    """Full ticks of every instrument every ``step_ns`` in ``[start_ns, end_ns)``, ``recv_ns``
    increasing, ``seq`` consecutive; the spot's log moves by ``spot_vol`` (one standard deviation)
    per step."""
    rng = random.Random(seed)
    spots = {r.instrument_token: _spec(r.instrument_token).spot_price for r in instruments
             if r.instrument_token & 0xFF == KITE_SEGMENT_INDICES}  # fmt: skip
    spot_of = {_spec(t).underlying: t for t in spots}
    priced = {
        r.instrument_token: PricedInstrument(
            spot_of[r.name],
            r.instrument_type,
            r.strike,
            expiry_ns(r.expiry),  # type: ignore[arg-type]
        )
        for r in instruments
        if r.expiry is not None and r.name in spot_of
    }
    seq = 0
    volume = 0
    t = start_ns
    while t < end_ns:
        for token in spots:
            spots[token] *= math.exp(rng.gauss(0.0, spot_vol))
        for i, r in enumerate(instruments):
            token = r.instrument_token
            div = kite_price_divisor(token)
            seq += 1
            volume += 25
            recv = t + i * 1_000  # a microsecond apart, in instrument order
            if token in spots:
                price = int(spots[token] * div)
                yield KiteTick(recv, seq, token, "full", price, exchange_timestamp=t // 10**9)
                continue
            p = priced[token]
            theo = surface.price(spots[p.spot_token], p, t)
            planted = plant is not None and plant.token == token
            lift = plant.rupees if planted and plant.start_ns <= t < plant.end_ns else 0.0  # type: ignore[union-attr]
            step = div // 20
            bid = int((theo + lift) * div) // step * step
            ask = bid + step
            bids = tuple((bid - k * step, 100 + 25 * k, 3) if bid - k * step > 0 else (0, 0, 0)
                         for k in range(5))  # fmt: skip
            asks = tuple((ask + k * step, 100 + 25 * k, 3) for k in range(5))
            yield KiteTick(
                recv, seq, token, "full", max(bid, step), volume_traded=volume, oi=50_000,
                exchange_timestamp=t // 10**9, bids=bids, asks=asks,
            )  # fmt: skip
        t += step_ns
