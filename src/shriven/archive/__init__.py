"""Long-term storage of sealed segments: recompressed with zstd, verified, uploaded to object
storage (S3 or a directory) and restored into a readable store."""

from shriven.archive.archiver import (
    ArchiveResult,
    RestoreResult,
    archive_segments,
    restore_segments,
)
from shriven.archive.target import Destination, LocalDestination, S3Destination, open_destination

__all__ = [
    "ArchiveResult",
    "Destination",
    "LocalDestination",
    "RestoreResult",
    "S3Destination",
    "archive_segments",
    "open_destination",
    "restore_segments",
]
