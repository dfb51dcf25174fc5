"""The write-ahead log: checksummed, optionally zstd-compressed frames of msgpack record batches
in numbered segment files, with a sparse time index beside each. docs/wal-format.md has the bytes.
"""

from shriven.wal.format import FORMAT_VERSION, list_segments, segment_name
from shriven.wal.index import IndexEntry, load_index
from shriven.wal.options import WalOptions
from shriven.wal.reader import Frame, ReadStats, WalReader, read_records, skipped_summary
from shriven.wal.store import METADATA_FILE, StoreWriter
from shriven.wal.writer import FSYNC_POLICIES, RecoveryReport, WalWriter, recover

__all__ = [
    "FORMAT_VERSION",
    "FSYNC_POLICIES",
    "METADATA_FILE",
    "Frame",
    "IndexEntry",
    "ReadStats",
    "RecoveryReport",
    "StoreWriter",
    "WalOptions",
    "WalReader",
    "WalWriter",
    "list_segments",
    "load_index",
    "read_records",
    "recover",
    "segment_name",
    "skipped_summary",
]
