"""The server's counters, and /metrics built from them at scrape time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["LATENCY_BUCKETS_S", "ServeStats", "render_metrics"]

PROTOCOLS: Final = ("kite", "binance")
# Receipt (the record's recv_ns) to the client's socket, live only.
LATENCY_BUCKETS_S: Final = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0)


@dataclass(slots=True)
class ServeStats:
    clients: Counter[str] = field(default_factory=Counter)  # protocol -> connected now
    messages: Counter[str] = field(default_factory=Counter)  # protocol -> messages sent
    bytes: Counter[str] = field(default_factory=Counter)  # protocol -> frame bytes sent
    heartbeats: int = 0
    dropped_bytes: int = 0  # left unsent to clients when they were cut
    disconnects: Counter[tuple[str, str]] = field(default_factory=Counter)  # (protocol, reason)
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> refused requests
    requests: Counter[str] = field(default_factory=Counter)  # query endpoint -> requests
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    latency_sum_s: float = 0.0

    def observe_latency(self, seconds: float, n: int = 1) -> None:
        """``n`` messages (one message written to ``n`` clients) ``seconds`` after receipt."""
        self.latency_sum_s += seconds * n
        for i, bound in enumerate(LATENCY_BUCKETS_S):
            if seconds <= bound:
                self.latency_counts[i] += n
                return
        self.latency_counts[-1] += n


class _Collector(Collector):
    def __init__(self, stats: ServeStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[object]:
        s = self.stats
        g = GaugeMetricFamily(
            "shriven_serve_clients", "Websocket clients connected now.", labels=["protocol"]
        )
        m = CounterMetricFamily(
            "shriven_serve_messages_sent", "Websocket messages sent.", labels=["protocol"]
        )
        b = CounterMetricFamily(
            "shriven_serve_bytes_sent", "Websocket bytes sent (whole frames).", labels=["protocol"]
        )
        for p in PROTOCOLS:
            g.add_metric([p], s.clients[p])
            m.add_metric([p], s.messages[p])
            b.add_metric([p], s.bytes[p])
        yield from (g, m, b)
        yield CounterMetricFamily(
            "shriven_serve_heartbeats_sent", "Kite 1-byte heartbeats sent.", value=s.heartbeats
        )
        yield CounterMetricFamily(
            "shriven_serve_dropped_bytes",
            "Bytes left unsent to clients when they were disconnected (a slow client's backlog).",
            value=s.dropped_bytes,
        )
        d = CounterMetricFamily(
            "shriven_serve_disconnects",
            "Websocket clients gone, by why (closed, slow, stalled, end_of_history, shutdown, "
            "error).",
            labels=["protocol", "reason"],
        )
        for (p, reason), n in sorted(s.disconnects.items()):
            d.add_metric([p, reason], n)
        yield d
        r = CounterMetricFamily(
            "shriven_serve_rejected",
            "Requests refused (auth, too_many_clients, bad_request, not_found).",
            labels=["reason"],
        )
        for reason, n in sorted(s.rejected.items()):
            r.add_metric([reason], n)
        yield r
        q = CounterMetricFamily(
            "shriven_serve_requests", "Query API requests by endpoint.", labels=["endpoint"]
        )
        for ep, n in sorted(s.requests.items()):
            q.add_metric([ep], n)
        yield q
        h = HistogramMetricFamily(
            "shriven_serve_latency_seconds",
            "Live messages: from the record's receipt to the write to the client's socket.",
        )
        cum, buckets = 0, []
        for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), s.latency_counts, strict=True):
            cum += n
            buckets.append((repr(bound) if bound != float("inf") else "+Inf", cum))
        h.add_metric([], buckets, s.latency_sum_s)
        yield h


def render_metrics(stats: ServeStats) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(stats))
    return generate_latest(registry)
