"""The bus in a run: settings -> BusOptions, the publisher beside a pipeline, ``sink``, ``tail``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shriven.bus.options import BusOptions, Credentials, StreamLimits
from shriven.bus.publisher import Publisher, PublisherStats
from shriven.bus.sink import SinkStats, run_sink
from shriven.bus.subjects import TYPE_TOKENS, encode_token
from shriven.bus.tail import run_tail
from shriven.config import Settings
from shriven.logging import get_logger
from shriven.pipeline.daemon import Pipeline

log = get_logger("shriven.app.bus")

RECORD_TYPES = tuple(TYPE_TOKENS.values())  # the <type> tokens of subjects
DRAIN_SECS = 10.0  # after the recorder stopped, how long the publisher may take to finish


def recorder_id(settings: Settings) -> str:
    """SHRIVEN_NATS_RECORDER_ID, else the host name made token-safe."""
    if settings.nats_recorder_id:
        return settings.nats_recorder_id
    host = socket.gethostname().split(".")[0] or "recorder"
    return "".join(c if c.isalnum() or c in "_-" else "-" for c in host)[:64]


def bus_options(settings: Settings, urls: list[str]) -> BusOptions:
    """The bus options: ``urls`` (the command's) else SHRIVEN_NATS_URLS."""
    return BusOptions(
        urls=tuple(urls or settings.nats_urls),
        stream=settings.nats_stream,
        prefix=settings.nats_subject_prefix,
        recorder=recorder_id(settings),
        credentials=Credentials(
            user=settings.nats_user,
            password=settings.nats_password,
            token=settings.nats_token,
            nkey_seed=settings.nats_nkey_seed,
            tls_ca_file=settings.nats_tls_ca_file,
            tls_cert_file=settings.nats_tls_cert_file,
            tls_key_file=settings.nats_tls_key_file,
        ),
        limits=StreamLimits(
            max_age_s=settings.nats_max_age_secs,
            max_bytes=settings.nats_max_bytes,
            replicas=settings.nats_replicas,
            duplicate_window_s=settings.nats_duplicate_window_secs,
        ),
        max_in_flight=settings.nats_max_in_flight,
        ack_timeout_s=settings.nats_ack_timeout_secs,
        buffer_records=settings.nats_buffer_records,
    )


def split_urls(values: list[str] | None) -> list[str]:
    return [u.strip() for v in values or [] for u in v.split(",") if u.strip()]


class _PublisherCollector(Collector):
    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    def collect(self):  # type: ignore[no-untyped-def]
        p = self._publisher
        p.health()  # refreshes the lag figures
        s: PublisherStats = p.stats
        lag = GaugeMetricFamily(
            "shriven_publisher_lag_records", "Durable records not yet acknowledged by the bus"
        )
        lag.add_metric([], s.lag_records)
        yield lag
        age = GaugeMetricFamily(
            "shriven_publisher_lag_seconds",
            "Age of the oldest durable record not yet acknowledged by the bus (0 when none)",
        )
        age.add_metric([], s.lag_seconds)
        yield age
        up = GaugeMetricFamily("shriven_publisher_connected", "1 while connected to NATS")
        up.add_metric([], 1 if s.connected else 0)
        yield up
        for name, doc, value in (
            ("shriven_publisher_acked", "Records acknowledged by the stream", s.acked),
            ("shriven_publisher_duplicates", "Acks saying the stream had it already", s.duplicates),
            ("shriven_publisher_retries", "Messages sent again", s.retries),
            ("shriven_publisher_catchups", "Reads of the WAL to catch up", s.catchups),
        ):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], value)
            yield family
        errors = CounterMetricFamily(
            "shriven_publisher_errors", "Publisher problems by kind", labels=["kind"]
        )
        for kind, n in s.errors.items():
            errors.add_metric([kind], n)
        yield errors


def add_publisher(pipeline: Pipeline, options: BusOptions) -> Publisher:
    """A publisher fed by ``pipeline``'s durable taps (records and book snapshots), on its
    /health and /metrics."""
    publisher = Publisher(options, Path(pipeline.config.data_dir))
    pipeline.add_tap(publisher.tap, durable=True)
    pipeline.add_snapshot_tap(publisher.snapshot_tap)
    pipeline.sources.sections["publisher"] = publisher.health
    pipeline.metrics.registry.register(_PublisherCollector(publisher))
    return publisher


async def run_with_publisher(
    run: Callable[[], Awaitable[int]], publisher: Publisher, drain_s: float = DRAIN_SECS
) -> int:
    """``run()`` (the pipeline) with the publisher beside it; once the recorder has stopped the
    publisher sends the last records and saves its position."""
    task = asyncio.create_task(publisher.run(), name="shriven-publisher")
    try:
        code = await run()
        await publisher.drain(drain_s)
        return code
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await publisher.close()


def subject_filter(prefix: str, symbol: str | None, kind: str | None) -> str:
    """The subject ``tail`` listens to: ``<prefix>.*.<type>.<instrument>`` with ``*``/``>``."""
    instrument = encode_token(symbol) if symbol else "*"
    return f"{prefix}.*.{kind or '*'}.{instrument}"


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def sink(
    settings: Settings,
    urls: list[str],
    archive: Path,
    *,
    subjects: str | None,
    durable: str,
    duration: float | None,
) -> SinkStats:
    """``shriven sink``: until SIGINT/SIGTERM (or ``duration``), then the counts."""
    options = bus_options(settings, urls)

    async def main() -> SinkStats:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        return await run_sink(
            options,
            archive,
            subjects=subjects,
            durable=durable,
            ack_wait_s=settings.nats_sink_ack_wait_secs,
            duration=duration,
            stop=stop,
        )

    return asyncio.run(main())


def tail(
    settings: Settings,
    urls: list[str],
    out: IO[str],
    zone: ZoneInfo,
    *,
    symbol: str | None,
    kind: str | None,
    count: int | None,
    duration: float | None,
) -> int:
    """``shriven tail``: records printed until Ctrl-C, ``count`` or ``duration``."""
    options = bus_options(settings, urls)
    subject = subject_filter(options.prefix, symbol, kind)
    return asyncio.run(run_tail(options, subject, out, zone, count=count, duration=duration))
