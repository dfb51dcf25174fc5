"""Plain counters the writer keeps; metrics, /health and the console line read them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class PipelineStats:
    records_written: int = 0
    records_by_stream: dict[str, int] = field(default_factory=dict)
    last_data_ns: dict[str, int] = field(default_factory=dict)  # venue -> last market data record
    frames_written: int = 0
    bytes_written: int = 0
    batches: int = 0
    snapshots_written: int = 0
    snapshot_rounds: int = 0
    last_snapshot_ns: int = 0
    syncs: int = 0
    last_durable_ns: int = 0
    gaps_by_venue: dict[str, int] = field(default_factory=dict)
    status_by_kind: dict[str, int] = field(default_factory=dict)
    invalid_by_kind: dict[str, int] = field(default_factory=dict)
    crossed_books: int = 0  # updates after which a book was crossed or locked
    crossed_now: int = 0  # books crossed or locked at the moment
    books: int = 0
    stale_episodes: dict[str, int] = field(default_factory=dict)
    wal_errors: int = 0
    # The first WAL failure since the last successful write (the root cause, e.g. the disk is
    # full at file X byte N), and the latest one (e.g. "the tick WAL is not open" while retrying).
    wal_error: str = ""
    # Exceptions raised downstream of the schema (by stage: "books", "wal_encode"); each record
    # involved is skipped (books) or dropped with a status marker (WAL), and the recorder goes on.
    recorder_errors: dict[str, int] = field(default_factory=dict)
    wal_last_error: str = ""
    started_ns: int = 0

    def wal_failed(self, error: str) -> None:
        self.wal_errors += 1
        self.wal_last_error = error
        if not self.wal_error:
            self.wal_error = error

    def wal_written(self) -> None:
        self.wal_error = self.wal_last_error = ""

    def count_invalid(self, kind: str) -> int:
        n = self.invalid_by_kind.get(kind, 0) + 1
        self.invalid_by_kind[kind] = n
        return n
