"""The recorder's store with the columnar book index written as tick segments are sealed, and
the indexer's counts on /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.recorder import StoreFactory
from shriven.replay.indexer import SidecarIndexer
from shriven.wal import StoreWriter, WalOptions, list_segments


def indexed_store(data_dir: Path, wal: WalOptions, indexer: SidecarIndexer) -> StoreFactory:
    """Open ``data_dir`` with ``wal``; each tick segment rotation seals goes to ``indexer``, and
    so does the previous run's last one (sealed by its close, never rotated), which a book read
    across the restart would otherwise lack."""

    def open_store() -> StoreWriter:
        store = StoreWriter(data_dir, wal, on_ticks_sealed=indexer.submit)
        segments = list_segments(store.ticks.directory)
        if len(segments) > 1:
            indexer.submit(segments[-2][1])  # the child skips it when its sidecar is valid
        return store

    return open_store


class _IndexerCollector(Collector):
    def __init__(self, indexer: SidecarIndexer) -> None:
        self._indexer = indexer

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "shriven_book_index_segments",
            "Sealed tick segments handed to the book indexer, by outcome (written, valid, "
            "failed, dropped)",
            labels=["outcome"],
        )
        c = self._indexer.counts
        for outcome, n in (
            ("written", c.written),
            ("valid", c.valid),
            ("failed", c.failed),
            ("dropped", c.dropped),
        ):
            family.add_metric([outcome], n)
        yield family


def add_index_metrics(pipeline: Pipeline, indexer: SidecarIndexer) -> None:
    pipeline.metrics.registry.register(_IndexerCollector(indexer))
