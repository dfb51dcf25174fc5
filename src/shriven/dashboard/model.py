"""What ``shriven monitor`` knows of one recorder: its last /health and /metrics, the rates and
quantiles derived from successive polls, and whether it still answers. Pure: no I/O."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

HISTORY = 180  # seconds of messages/s kept for the sparklines (one poll a second)
QUANTILE_WINDOW_S = 60.0  # fsync and receive-to-durable p99 over the last minute

Buckets = dict[float, float]  # upper bound -> cumulative count


def histogram_buckets(metrics_text: str) -> dict[str, Buckets]:
    """Histogram name -> its cumulative buckets summed over every label but ``le``."""
    out: dict[str, Buckets] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.type != "histogram":
            continue
        buckets: Buckets = {}
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
        out[family.name] = buckets
    return out


def quantile(q: float, now: Buckets, before: Buckets | None = None) -> float | None:
    """The ``q`` quantile of the observations between ``before`` and ``now`` (cumulative
    buckets), interpolated inside its bucket as Prometheus' histogram_quantile does; None when
    nothing was observed."""
    bounds = sorted(now)
    counts = [now[b] - (before or {}).get(b, 0.0) for b in bounds]
    if not bounds or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            span = count - prev_count
            frac = (rank - prev_count) / span if span > 0 else 1.0
            return prev_bound + (bound - prev_bound) * frac
        prev_bound, prev_count = bound, count
    return prev_bound


@dataclass(slots=True)
class Poll:
    """One answer of a recorder: when (monotonic s), /health's JSON and /metrics' histograms."""

    at: float
    health: dict
    histograms: dict[str, Buckets]


@dataclass(slots=True)
class RecorderView:
    url: str
    last: Poll | None = None
    previous: Poll | None = None
    error: str = ""  # why the last poll failed ("" = it answered)
    failed_since: float | None = None  # monotonic s of the first failed poll in a row
    rates: dict[str, deque[float]] = field(default_factory=dict)  # venue -> messages/s
    record_rates: dict[str, float] = field(default_factory=dict)  # venue -> records/s
    wal_bytes_per_s: float = 0.0
    _window: deque[Poll] = field(default_factory=lambda: deque(maxlen=120))

    @property
    def answering(self) -> bool:
        return self.last is not None and not self.error

    def update(self, poll: Poll) -> None:
        """A successful poll: derive messages/s, records/s and WAL bytes/s from the last one."""
        prev = self.last
        self.previous, self.last = prev, poll
        self.error, self.failed_since = "", None
        self._window.append(poll)
        while self._window and poll.at - self._window[0].at > QUANTILE_WINDOW_S + 0.5:
            self._window.popleft()
        if prev is None:
            return
        dt = max(1e-6, poll.at - prev.at)
        feeds, old = poll.health.get("feeds", {}), prev.health.get("feeds", {})
        for venue, f in feeds.items():
            o = old.get(venue, f)
            rate = max(0.0, (f["messages"] - o["messages"]) / dt)
            self.rates.setdefault(venue, deque(maxlen=HISTORY)).append(rate)
            self.record_rates[venue] = max(0.0, (f["records"] - o["records"]) / dt)
        wal, old_wal = poll.health.get("wal", {}), prev.health.get("wal", {})
        written = wal.get("bytes_written", 0) - old_wal.get("bytes_written", 0)
        self.wal_bytes_per_s = max(0.0, written / dt)

    def failed(self, at: float, error: str) -> None:
        """A poll that got no answer (refused, timed out, not JSON): keep the last data shown."""
        if self.failed_since is None:
            self.failed_since = at
        self.error = error

    def p99(self, histogram: str) -> float | None:
        """p99 of ``histogram`` over the last minute of polls (since start until a minute of
        polls is in)."""
        if self.last is None or histogram not in self.last.histograms:
            return None
        oldest = self._window[0] if len(self._window) > 1 else None
        before = oldest.histograms.get(histogram) if oldest is not None else None
        return quantile(0.99, self.last.histograms[histogram], before)
