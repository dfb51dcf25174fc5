"""``WalOptions``: what a WAL writer needs to know (segment size, compression, fsync policy).

The WAL reads no settings: whoever opens it (the recorder's start-up in ``shriven.app``, a test,
a benchmark) builds one of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from shriven.errors import ConfigError

FsyncPolicy = Literal["always", "interval", "never", "caller"]
FSYNC_POLICIES: Final = ("always", "interval", "never", "caller")
DEFAULT_SEGMENT_SIZE: Final = 100 * 1024 * 1024
DEFAULT_INDEX_INTERVAL: Final = 64 * 1024
MIN_SEGMENT_SIZE: Final = 4096


@dataclass(frozen=True, slots=True)
class WalOptions:
    """How one WAL is written.

    ``fsync_policy``: ``always`` fdatasyncs after every frame; ``interval`` from a background
    thread at most ``fsync_interval_ms`` apart; ``never`` leaves it to the kernel; ``caller``
    means the caller fsyncs (``WalWriter.sync()``) when it chooses, and the WAL itself only at
    segment creation, rotation and close (the recorder loop uses it to time its fsyncs)."""

    segment_size: int = DEFAULT_SEGMENT_SIZE
    compression: bool = True
    compression_level: int = 1
    fsync_policy: FsyncPolicy = "interval"
    fsync_interval_ms: int = 200
    index_interval: int = DEFAULT_INDEX_INTERVAL

    def __post_init__(self) -> None:
        if self.fsync_policy not in FSYNC_POLICIES:
            raise ConfigError(
                f"bad WAL fsync policy {self.fsync_policy!r}: use one of "
                f"{', '.join(FSYNC_POLICIES)}"
            )
        if self.segment_size < MIN_SEGMENT_SIZE:
            raise ConfigError(
                f"bad WAL segment size {self.segment_size}: use at least {MIN_SEGMENT_SIZE} bytes"
            )


__all__ = ["FSYNC_POLICIES", "FsyncPolicy", "WalOptions"]
