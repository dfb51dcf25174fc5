"""Live put-call parity watch: a recorder tap (records as written) that runs replay's ParityFeed
on the Kite ticks, counts violations in /metrics and writes an ``analytics``/``parity_violation``
status record when one opens and when it closes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from shriven.analytics import ParityEvent
from shriven.events import KiteTick, Record, SeqCounter, Status
from shriven.pipeline.queue import RecordQueue
from shriven.replay.arb import ParityFeed
from shriven.replay.chain import ChainUniverse
from shriven.universe import InstrumentTable

__all__ = ["PARITY_KIND", "ParityTap", "chain_universes"]

PARITY_KIND = "parity_violation"


def chain_universes(table: InstrumentTable, spot_tokens: Iterable[int]) -> list[ChainUniverse]:
    """Every future and option of each spot's underlying (subscribed or not: re-centring adds
    strikes while running)."""
    out = []
    for token in spot_tokens:
        spot = table.by_token.get(token)
        if spot is None:
            continue
        name = table.underlying_of(spot)
        rows = table.derivatives.get(name, [])
        options = {r.instrument_token: r for r in rows if r.instrument_type in ("CE", "PE")}
        futures = {r.instrument_token: r for r in rows if r.instrument_type == "FUT"}
        if options:
            out.append(ChainUniverse(name, token, options, futures))  # type: ignore[arg-type]
    return out


class ParityTap:
    """``tap(batch)`` for ``Pipeline.add_tap(..., durable=False)``."""

    def __init__(
        self,
        universes: Sequence[ChainUniverse],
        threshold: float,
        rate: float,
        queue: RecordQueue,
        registry: CollectorRegistry,
    ) -> None:
        self.queue = queue
        self.seq = SeqCounter()
        self.rate = rate
        self.feeds: dict[int, list[tuple[str, ParityFeed]]] = {}
        self.opened = Counter(
            "shriven_parity_violations_opened",
            "Put-call parity violations over the threshold after spreads that opened",
            ["underlying"],
            registry=registry,
        )
        self.closed = Counter(
            "shriven_parity_violations_closed",
            "Put-call parity violations that closed",
            ["underlying"],
            registry=registry,
        )
        self.open = Gauge(
            "shriven_parity_violations_open", "Parity violations open now", ["underlying"],
            registry=registry,
        )  # fmt: skip
        self.threshold = threshold
        self.follow(universes)

    def follow(self, universes: Sequence[ChainUniverse]) -> None:
        """Watch these chains from now on, afresh: a Kite feed held to SHRIVEN_KITE_WINDOW
        plans its universe again each time its window opens. Violations left open by the
        chains watched so far leave the open gauge (no tick will close them)."""
        for name, feed in {id(f): (n, f) for fs in self.feeds.values() for n, f in fs}.values():
            if feed.watch.open:
                self.open.labels(name).dec(len(feed.watch.open))
        self.feeds = {}
        for u in universes:
            feed = ParityFeed(u, self.threshold, self.rate)
            for key in u.keys:
                self.feeds.setdefault(int(key.partition(":")[2]), []).append((u.underlying, feed))

    def __call__(self, batch: Sequence[Record]) -> None:
        feeds = self.feeds
        for r in batch:
            if type(r) is not KiteTick:
                continue
            for name, feed in feeds.get(r.instrument_token, ()):
                for event in feed.apply(r):
                    self._report(name, event)

    def _report(self, name: str, e: ParityEvent) -> None:
        if e.opened:
            self.opened.labels(name).inc()
            self.open.labels(name).inc()
        else:
            self.closed.labels(name).inc()
            self.open.labels(name).dec()
        detail = {
            "underlying": name,
            "expiry": e.expiry,
            "strike": e.strike,
            "state": "opened" if e.opened else "closed",
            "direction": e.direction,
            "edge": round(e.edge, 4),
            "threshold": self.threshold,
            "tick_ns": e.at_ns,
        }
        self.queue.put_nowait(
            Status(
                time.time_ns(), self.seq.next(), "analytics", PARITY_KIND, "", json.dumps(detail)
            )
        )
