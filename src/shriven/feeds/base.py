"""The interface every feed adapter offers the pipeline, and the counters it keeps.

Adapters push records into a :class:`RecordSink` (the pipeline's bounded queue). Counters live in
a plain :class:`FeedStats` so that the pipeline can export them without adapters knowing about
Prometheus.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from shriven.events import Record


class RecordSink(Protocol):
    async def put(self, record: Record) -> None:
        """Hand one record to the pipeline; waits while the queue is full (or drops, by policy)."""
        ...


@dataclass(slots=True)
class FeedStats:
    """Counters of one feed. ``connected`` is a property so that every adapter's plain
    ``stats.connected = ...`` also records when the feed went down (/health needs how long no
    feed has been connected, not how long since start)."""

    venue: str
    connections: int = 0
    messages: int = 0
    bytes: int = 0
    records: int = 0
    parse_errors: int = 0
    gaps: int = 0
    resyncs: int = 0
    reconnects: int = 0
    last_message_ns: int = 0
    task_restarts: int = 0  # connection tasks restarted after an unexpected exception
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    down_since_ns: int = 0  # when ``connected`` last turned false; 0 = never connected yet
    held: str = ""  # why the feed is deliberately disconnected now ("" = it is not)
    _up: bool = field(default=False, repr=False)

    @property
    def connected(self) -> bool:
        return self._up

    @connected.setter
    def connected(self, value: bool) -> None:
        if self._up and not value:
            self.down_since_ns = time.time_ns()
        self._up = value

    def count_error(self, kind: str) -> int:
        """Count one bad input of ``kind``; returns how many of that kind so far (1 = first)."""
        n = self.errors_by_kind.get(kind, 0) + 1
        self.errors_by_kind[kind] = n
        self.parse_errors += 1
        return n


class FeedAdapter(Protocol):
    venue: str
    stats: FeedStats

    async def run(self) -> None:
        """Connect, stream into the sink and reconnect on failure until cancelled."""
        ...
