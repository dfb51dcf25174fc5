"""Live spot against perpetual basis watch: a recorder tap (records as written) that runs replay's
BasisFeed on the Binance records, counts deviations in /metrics and writes an
``analytics``/``basis_violation`` status record when one opens and when it closes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from shriven.analytics.basis import BasisEvent
from shriven.events import Record, SeqCounter, Status
from shriven.logging import get_logger
from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.queue import RecordQueue
from shriven.replay.basis import FED_TYPES, BasisFeed, spot_of_perpetual
from shriven.universe.binance_recorded import load_listings

__all__ = ["BASIS_KIND", "BasisTap", "add_basis_tap", "basis_pairs"]

BASIS_KIND = "basis_violation"
log = get_logger("shriven.app.basis_tap")


def basis_pairs(
    spots: Iterable[str], perpetuals: Iterable[tuple[str, str]], data_dir: Path
) -> tuple[set[str], list[str]]:
    """The spot symbols that have a recorded perpetual (venue, symbol) beside them, and one
    line for each perpetual whose spot is not recorded."""
    listings = load_listings(data_dir)
    spots = set(spots)
    paired: set[str] = set()
    lonely: list[str] = []
    for venue, symbol in perpetuals:
        listing = listings.get(venue, {}).get(symbol)
        spot = spot_of_perpetual(venue, symbol, listing.contract_type if listing else None)
        if spot is None:
            continue
        if spot in spots:
            paired.add(spot)
        else:
            lonely.append(
                f"no live basis watch for {venue}:{symbol}: its spot {spot} is not recorded "
                "(add it to SHRIVEN_BINANCE_SYMBOLS)"
            )
    return paired, lonely


class BasisTap:
    """``tap(batch)`` for ``Pipeline.add_tap(..., durable=False)``."""

    def __init__(
        self,
        spots: set[str],
        threshold_bps: float,
        data_dir: Path,
        queue: RecordQueue,
        registry: CollectorRegistry,
    ) -> None:
        self.queue = queue
        self.seq = SeqCounter()
        self.threshold = threshold_bps
        self.feed = BasisFeed(threshold_bps, load_listings(data_dir), spots)
        self.opened = Counter(
            "shriven_basis_violations_opened",
            "Spot against perpetual basis deviations over the threshold after spreads that opened",
            ["perpetual"],
            registry=registry,
        )
        self.closed = Counter(
            "shriven_basis_violations_closed",
            "Spot against perpetual basis deviations that closed",
            ["perpetual"],
            registry=registry,
        )
        self.open = Gauge(
            "shriven_basis_violations_open", "Basis deviations open now", ["perpetual"],
            registry=registry,
        )  # fmt: skip

    def __call__(self, batch: Sequence[Record]) -> None:
        apply = self.feed.apply
        fed = FED_TYPES
        for r in batch:
            if type(r) in fed:  # not Kite ticks nor trades: most of a batch
                for event in apply(r):
                    self._report(event)

    def _report(self, e: BasisEvent) -> None:
        if e.opened:
            self.opened.labels(e.perp).inc()
            self.open.labels(e.perp).inc()
        else:
            self.closed.labels(e.perp).inc()
            self.open.labels(e.perp).dec()
        detail = {
            "spot": e.spot,
            "perpetual": e.perp,
            "state": "opened" if e.opened else "closed",
            "direction": e.direction,
            "edge_bps": round(e.edge_bps, 4),
            "basis_bps": None if e.mid_bps is None else round(e.mid_bps, 4),
            "funding_rate": e.funding_rate,
            "next_funding_ms": e.next_funding_ms or None,
            "threshold_bps": self.threshold,
            "tick_ns": e.at_ns,
        }
        self.queue.put_nowait(
            Status(time.time_ns(), self.seq.next(), "analytics", BASIS_KIND, "", json.dumps(detail))
        )


def add_basis_tap(
    pipeline: Pipeline, threshold_bps: float, symbols: dict[str, list[str]]
) -> BasisTap | None:
    """Add the live basis watch when Binance spot and a perpetual of the same base are both
    recorded (``symbols``: venue -> its symbols, resolved); log one line per perpetual without
    its spot."""
    data_dir = Path(pipeline.config.data_dir)
    perpetuals = [(v, s) for v, names in symbols.items() if v != "binance" for s in names]
    spots, lonely = basis_pairs(symbols.get("binance", ()), perpetuals, data_dir)
    for line in lonely:
        log.warning(line)
    if not spots:
        return None
    tap = BasisTap(spots, threshold_bps, data_dir, pipeline.queue, pipeline.metrics.registry)
    pipeline.add_tap(tap, durable=False)
    log.info("live basis watch", spots=sorted(spots), threshold_bps=threshold_bps)
    return tap
