"""Where the bus has acknowledged a recorder's WAL up to, kept in the data directory (pure logic
plus one atomic file).

The publisher sends records in WAL order and this position is the acknowledged prefix: every
record of an earlier run, and in run ``run`` every record of stream ``s`` with ``seq <=
acked[s]`` (within a run each stream's ``seq`` grows in WAL order). A run is named by the
``recv_ns`` of its ``started`` marker, so runs compare by start time; ``scan_from`` is a WAL
segment number no later than the first record not yet acknowledged (where a catch-up read may
start).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from shriven.files import atomic_write

POSITION_VERSION = 1


@dataclass(slots=True)
class Frontier:
    """A prefix of the WAL in (run, per-stream seq) terms."""

    run: int = -1
    seqs: dict[str, int] = field(default_factory=dict)

    def covers(self, run: int, stream: str, seq: int) -> bool:
        if run != self.run:
            return run < self.run
        return seq <= self.seqs.get(stream, 0)

    def advance(self, run: int, stream: str, seq: int) -> None:
        if run > self.run:
            self.run = run
            self.seqs = {}
        if run == self.run and seq > self.seqs.get(stream, 0):
            self.seqs[stream] = seq

    def copy(self) -> Frontier:
        return Frontier(self.run, dict(self.seqs))


@dataclass(slots=True)
class Position:
    recorder: str
    stream: str  # the JetStream stream
    acked: Frontier = field(default_factory=Frontier)
    scan_from: int = 0
    scan_run: int = 0  # the run in force where segment scan_from starts (0: before any start)
    published: int = 0  # records acknowledged, over every run

    def to_json(self) -> bytes:
        doc = {
            "version": POSITION_VERSION,
            "recorder": self.recorder,
            "stream": self.stream,
            "run": self.acked.run,
            "acked": self.acked.seqs,
            "scan_from": self.scan_from,
            "scan_run": self.scan_run,
            "published": self.published,
        }
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def position_path(data_dir: Path, stream: str) -> Path:
    return data_dir / "bus" / f"{stream}.position.json"


def load_position(path: Path, recorder: str, stream: str) -> tuple[Position, str]:
    """The saved position (a fresh one when there is none) and a warning line ("" if none) when
    the file could not be used."""
    fresh = Position(recorder, stream)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return fresh, ""
    except (OSError, ValueError) as exc:
        return fresh, f"cannot read the publish position {path} ({exc}); publishing from the start"
    try:
        if doc["version"] != POSITION_VERSION:
            raise ValueError(f"version {doc['version']!r}")
        if doc["recorder"] != recorder:
            return fresh, (
                f"the publish position {path} is recorder {doc['recorder']!r}'s, this is "
                f"{recorder!r}: publishing from the start (the sink drops what it holds)"
            )
        seqs = {str(k): int(v) for k, v in dict(doc["acked"]).items()}
        pos = Position(
            recorder,
            stream,
            Frontier(int(doc["run"]), seqs),
            int(doc["scan_from"]),
            int(doc["scan_run"]),
            int(doc["published"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        return fresh, f"the publish position {path} is damaged ({exc}); publishing from the start"
    return pos, ""


def save_position(path: Path, position: Position) -> None:
    atomic_write(path, position.to_json(), mode=0o644)
