"""Prometheus metrics on a private registry (so tests and several pipelines never collide).

Counters that already live in plain objects (FeedStats, QueueStats, PipelineStats) are read at
scrape time by a custom collector instead of being mirrored on every record; only latency and size
distributions are real histograms, observed once per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shriven.feeds.base import FeedStats
from shriven.pipeline.queue import RecordQueue
from shriven.pipeline.stats import PipelineStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)


def _per_label(name: str, doc: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
    """One counter family with a sample per key of ``counts``."""
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, n in counts.items():
        family.add_metric([key], n)
    return family


class PipelineMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.batch_size = Histogram(
            "shriven_batch_records", "Records per writer batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.wal_write_seconds = Histogram(
            "shriven_wal_write_seconds",
            "Time to encode and append one frame to a WAL",
            ["wal"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.fsync_seconds = Histogram(
            "shriven_wal_fsync_seconds", "Time of one WAL fsync", ["wal"], buckets=_LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.recv_to_durable_seconds = Histogram(
            "shriven_receive_to_durable_seconds",
            "From a batch's oldest record being received to it being durable on disk",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.snapshot_seconds = Histogram(
            "shriven_snapshot_seconds",
            "Time to take and write one round of book snapshots",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def attach(
        self,
        feeds: Callable[[], Sequence[FeedStats]],
        queue: RecordQueue,
        stats: PipelineStats,
        disk_free: Callable[[], int],
        feed_state: Callable[[], dict[str, tuple[bool, bool]]] | None = None,
    ) -> None:
        """``feed_state``: venue -> (market open now, stale now), as /health decides them."""
        self.registry.register(_StateCollector(feeds, queue, stats, disk_free, feed_state))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(
        self,
        feeds: Callable[[], Sequence[FeedStats]],
        queue: RecordQueue,
        stats: PipelineStats,
        disk_free: Callable[[], int],
        feed_state: Callable[[], dict[str, tuple[bool, bool]]] | None = None,
    ) -> None:
        self._feeds = feeds
        self._queue = queue
        self._stats = stats
        self._disk_free = disk_free
        self._feed_state = feed_state

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield from self._feed_metrics()
        yield from self._queue_metrics()
        yield from self._pipeline_metrics()

    def _feed_metrics(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        feeds = list(self._feeds())
        counters = {
            "messages": "Messages received from the venue",
            "bytes": "Bytes received from the venue",
            "records": "Records produced by the feed",
            "parse_errors": "Messages or packets that could not be parsed",
            "gaps": "Sequence gaps detected by the feed",
            "resyncs": "Book resynchronisations",
            "reconnects": "Reconnections after a drop",
            "task_restarts": "Connection tasks restarted after an unexpected exception",
        }
        for attr, doc in counters.items():
            fam = CounterMetricFamily(f"shriven_feed_{attr}", doc, labels=["venue"])
            for f in feeds:
                fam.add_metric([f.venue], getattr(f, attr))
            yield fam
        by_kind = CounterMetricFamily(
            "shriven_feed_errors", "Bad input per feed and kind", labels=["venue", "kind"]
        )
        connected = GaugeMetricFamily(
            "shriven_feed_connected", "1 when the feed is connected", labels=["venue"]
        )
        age = GaugeMetricFamily(
            "shriven_feed_last_message_age_seconds",
            "Seconds since the last message (-1 before the first)",
            labels=["venue"],
        )
        held = GaugeMetricFamily(
            "shriven_feed_held",
            "1 while the feed is held disconnected on purpose (SHRIVEN_KITE_WINDOW)",
            labels=["venue"],
        )
        now = time.time_ns()
        for f in feeds:
            held.add_metric([f.venue], 1.0 if f.held else 0.0)
            for kind, n in f.errors_by_kind.items():
                by_kind.add_metric([f.venue, kind], n)
            connected.add_metric([f.venue], 1.0 if f.connected else 0.0)
            age.add_metric(
                [f.venue], (now - f.last_message_ns) / 1e9 if f.last_message_ns else -1.0
            )
        yield by_kind
        yield connected
        yield held
        yield age
        if self._feed_state is not None:
            market = GaugeMetricFamily(
                "shriven_feed_market_open",
                "1 while the feed's market is open (NSE calendar for kite)",
                labels=["venue"],
            )
            stale = GaugeMetricFamily(
                "shriven_feed_stale",
                "1 while the market is open and no data came for stale_feed_secs",
                labels=["venue"],
            )
            for venue, (is_open, is_stale) in self._feed_state().items():
                market.add_metric([venue], 1.0 if is_open else 0.0)
                stale.add_metric([venue], 1.0 if is_stale else 0.0)
            yield market
            yield stale

    def _queue_metrics(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        q = self._queue
        qs = q.stats
        yield GaugeMetricFamily("shriven_queue_depth", "Records waiting for the writer", len(q))
        yield GaugeMetricFamily("shriven_queue_capacity", "Queue bound (max_queue_size)", q.maxsize)
        yield GaugeMetricFamily(
            "shriven_queue_high_water", "Deepest the queue has been", qs.high_water
        )
        yield CounterMetricFamily(
            "shriven_queue_full_waits", "Puts that waited because the queue was full", qs.waits
        )
        yield CounterMetricFamily(
            "shriven_queue_full_wait_seconds",
            "Total time feeds spent waiting for room",
            qs.wait_seconds,
        )
        yield CounterMetricFamily(
            "shriven_queue_full_episodes", "Times the queue filled up", qs.full_episodes
        )
        yield CounterMetricFamily(
            "shriven_queue_paced",
            "Puts that waited for the writer's next take at the queue's soft limit",
            qs.paced,
        )
        yield CounterMetricFamily(
            "shriven_queue_paced_seconds",
            "Total time feeds spent waiting at the soft limit",
            qs.paced_seconds,
        )
        # Zero for every stream before its first drop: an alert on increase() needs a sample
        # from before the first drop to see it.
        streams = {f.venue: 0 for f in self._feeds()} | {"system": 0}
        yield _per_label(
            "shriven_queue_dropped",
            "Records dropped by the drop policy",
            "stream",
            streams | qs.dropped_by_stream,
        )

    def _pipeline_metrics(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self._stats
        yield _per_label(
            "shriven_records_written",
            "Records appended to the tick WAL",
            "stream",
            s.records_by_stream,
        )
        yield CounterMetricFamily(
            "shriven_wal_bytes_written", "Bytes appended to the tick WAL", s.bytes_written
        )
        yield CounterMetricFamily("shriven_wal_frames_written", "Tick WAL frames", s.frames_written)
        yield CounterMetricFamily("shriven_wal_errors", "WAL writes that failed", s.wal_errors)
        yield _per_label(
            "shriven_recorder_errors",
            "Exceptions the recorder loop caught and survived, by stage",
            "stage",
            s.recorder_errors,
        )
        yield CounterMetricFamily(
            "shriven_snapshots_written", "Book snapshots", s.snapshots_written
        )
        yield _per_label("shriven_gaps", "Gap markers seen in the stream", "venue", s.gaps_by_venue)
        yield _per_label(
            "shriven_status_records", "Status records seen, by kind", "kind", s.status_by_kind
        )
        yield _per_label(
            "shriven_invalid_records",
            "Records with nonsense values, by kind",
            "kind",
            s.invalid_by_kind,
        )
        yield _per_label(
            "shriven_stale_feed_episodes",
            "Times a feed went silent while open",
            "venue",
            {f.venue: 0 for f in self._feeds()} | s.stale_episodes,
        )
        yield GaugeMetricFamily("shriven_books", "Order books held", s.books)
        yield CounterMetricFamily(
            "shriven_crossed_books", "Crossed or locked books detected", s.crossed_books
        )
        yield GaugeMetricFamily(
            "shriven_disk_free_bytes", "Free bytes on the data disk", self._disk_free()
        )
        yield GaugeMetricFamily(
            "shriven_last_durable_timestamp_seconds",
            "When the tick WAL was last made durable",
            s.last_durable_ns / 1e9,
        )
