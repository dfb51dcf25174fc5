"""Archive sealed segments and restore them. Segments are treated as files plus their checksums
(whatever their format inside): each segment and its index are compressed whole with zstd at a
high level (optionally with a dictionary trained on the store), the compressed copy is
decompressed again and compared with the original before anything is sent, then uploaded and
verified there; only then is the local segment removed.

Layout under the destination, per WAL (``ticks``, ``lob``)::

    ticks/segment_00000012.wal.zst    the segment, zstd
    ticks/segment_00000012.idx.zst    its index, zstd (when it had one)
    ticks/segment_00000012.json       manifest: SHA-256 and size of each original and copy
    dictionaries/<id>.zdict           a trained dictionary, when one was used
    metadata.json, instruments.json   the store's, as of the last archive run
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from shriven.archive.target import Destination, sha256
from shriven.errors import ArchiveError
from shriven.files import atomic_write
from shriven.logging import get_logger
from shriven.wal.format import index_path, segment_number
from shriven.wal.prune import Segment, remove_segments

log = get_logger("shriven.archive")

DEFAULT_LEVEL = 19
DICTIONARY_BYTES = 112 * 1024  # zstd's own default dictionary size
_SAMPLE_BYTES = 16 * 1024
_SAMPLES_PER_SEGMENT = 64
_MANIFEST_FORMAT = "shriven-archive"
_STORE_FILES = ("metadata.json", "instruments.json")


@dataclass(slots=True)
class ArchiveResult:
    archived: list[Segment] = field(default_factory=list)
    original_bytes: int = 0
    archived_bytes: int = 0
    seconds: float = 0.0  # compressing, verifying and uploading
    failed: str = ""  # the error that stopped the run ("" = none); its segment is kept

    @property
    def ratio(self) -> float:
        return self.original_bytes / self.archived_bytes if self.archived_bytes else 0.0


@dataclass(slots=True)
class RestoreResult:
    restored: list[str] = field(default_factory=list)  # "ticks/segment_N.wal"
    skipped: list[str] = field(default_factory=list)  # already there, same checksum


def train_dictionary(segments: Sequence[Segment], size: int = DICTIONARY_BYTES) -> bytes:
    """A zstd dictionary trained on evenly spaced samples of ``segments`` (and their indexes)."""
    samples: list[bytes] = []
    for seg in segments:
        for path in seg.files:
            data = path.read_bytes()
            step = max(_SAMPLE_BYTES, len(data) // _SAMPLES_PER_SEGMENT)
            samples += [data[i : i + _SAMPLE_BYTES] for i in range(0, len(data), step)]
    if len(samples) < 8:
        raise ArchiveError(
            "too little data to train a dictionary on (fewer than 8 samples): archive without "
            "--dictionary"
        )
    return zstandard.train_dictionary(size, samples).as_bytes()


def _dictionary_id(data: bytes | None) -> str | None:
    return None if data is None else sha256(data)[:16]


def compress_verified(data: bytes, level: int, dictionary: bytes | None) -> bytes:
    """``data`` compressed; raises ArchiveError unless it decompresses to the same bytes."""
    d = zstandard.ZstdCompressionDict(dictionary) if dictionary is not None else None
    packed = zstandard.ZstdCompressor(level=level, dict_data=d, write_checksum=True).compress(data)
    back = _decompress(packed, dictionary)
    if back != data:
        raise ArchiveError("the compressed copy does not decompress to the original")
    return packed


def _decompress(packed: bytes, dictionary: bytes | None) -> bytes:
    d = zstandard.ZstdCompressionDict(dictionary) if dictionary is not None else None
    try:
        return zstandard.ZstdDecompressor(dict_data=d).decompress(packed)
    except zstandard.ZstdError as exc:
        raise ArchiveError(f"cannot decompress an archived copy: {exc}") from None


def archive_segments(
    data_dir: Path,
    segments: Sequence[Segment],
    dest: Destination,
    *,
    level: int = DEFAULT_LEVEL,
    dictionary: bytes | None = None,
    remove: bool = True,
    progress: Callable[[Segment, int, int], None] | None = None,
) -> ArchiveResult:
    """Archive ``segments`` oldest first; stop at the first failure (that segment and the later
    ones stay local, and ``failed`` says why). ``remove``: delete each local segment once its
    copy is verified at the destination."""
    result = ArchiveResult()
    started = time.perf_counter()
    dict_id = _dictionary_id(dictionary)
    try:
        if dictionary is not None:
            dest.put(f"dictionaries/{dict_id}.zdict", dictionary)
        for seg in segments:
            manifest: dict[str, object] = {
                "format": _MANIFEST_FORMAT,
                "wal": seg.wal,
                "segment": seg.path.name,
                "level": level,
                "dictionary": dict_id,
                "last_ns": seg.last_ns,
                "files": {},
            }
            original = packed_total = 0
            for path in seg.files:
                data = path.read_bytes()
                packed = compress_verified(data, level, dictionary)
                kind = "index" if path == index_path(seg.path) else "segment"
                key = f"{seg.wal}/{path.name}.zst"
                dest.put(key, packed)
                manifest["files"][kind] = {  # type: ignore[index]
                    "key": key,
                    "name": path.name,
                    "bytes": len(data),
                    "sha256": sha256(data),
                    "archived_bytes": len(packed),
                    "archived_sha256": sha256(packed),
                }
                original += len(data)
                packed_total += len(packed)
            body = (json.dumps(manifest, indent=2) + "\n").encode()
            dest.put(f"{seg.wal}/{seg.path.stem}.json", body)
            if remove:
                remove_segments([seg])
            result.archived.append(seg)
            result.original_bytes += original
            result.archived_bytes += packed_total
            log.info(
                "segment archived",
                wal=seg.wal,
                file=seg.path.name,
                bytes=original,
                archived_bytes=packed_total,
                to=dest.name,
            )
            if progress is not None:
                progress(seg, original, packed_total)
        for name in _STORE_FILES:
            path = Path(data_dir) / name
            if path.is_file():
                dest.put(name, path.read_bytes())
    except ArchiveError as exc:
        result.failed = str(exc)
    except OSError as exc:
        result.failed = f"{exc.filename or ''}: {exc.strerror or exc}"
    result.seconds = time.perf_counter() - started
    return result


def restore_segments(
    dest: Destination, data_dir: Path, wals: Sequence[str] = ("ticks", "lob")
) -> RestoreResult:
    """Bring every archived segment back into ``data_dir`` (checked against the manifest's
    SHA-256 before and after decompression, written atomically). A segment already there with
    the same checksum is skipped; one that differs is refused. The store's instruments.json is
    brought back when the store has none."""
    result = RestoreResult()
    dictionaries: dict[str, bytes] = {}
    for wal in wals:
        for key in dest.keys(f"{wal}/"):
            if not key.endswith(".json"):
                continue
            manifest = _manifest(dest, key)
            dict_id = manifest.get("dictionary")
            dictionary = None
            if isinstance(dict_id, str):
                if dict_id not in dictionaries:
                    dictionaries[dict_id] = dest.get(f"dictionaries/{dict_id}.zdict")
                dictionary = dictionaries[dict_id]
            files = manifest["files"]
            for kind in ("segment", "index"):  # the segment first: an index alone is ignored
                entry = files.get(kind)
                if entry is None:
                    continue
                target = Path(data_dir) / wal / entry["name"]
                label = f"{wal}/{entry['name']}"
                if target.exists():
                    if sha256(target.read_bytes()) == entry["sha256"]:
                        result.skipped.append(label)
                        continue
                    raise ArchiveError(
                        f"{target} exists and differs from the archived copy: move it away "
                        "or restore into another directory"
                    )
                packed = dest.get(entry["key"])
                if sha256(packed) != entry["archived_sha256"]:
                    raise ArchiveError(f"{dest.name}/{entry['key']} fails its checksum")
                data = _decompress(packed, dictionary)
                if sha256(data) != entry["sha256"]:
                    raise ArchiveError(f"{dest.name}/{entry['key']} decompresses wrongly")
                atomic_write(target, data, mode=0o644)
                if kind == "segment":
                    result.restored.append(label)
    instruments = Path(data_dir) / "instruments.json"
    if not instruments.exists() and "instruments.json" in dest.keys("instruments.json"):
        atomic_write(instruments, dest.get("instruments.json"), mode=0o644)
    return result


def _manifest(dest: Destination, key: str) -> dict:
    try:
        doc = json.loads(dest.get(key))
        if doc.get("format") != _MANIFEST_FORMAT or segment_number(Path(doc["segment"])) is None:
            raise ValueError("not a shriven archive manifest")
        return doc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArchiveError(f"{dest.name}/{key}: {exc}; is this a shriven archive?") from None
