"""The bus's naming: subjects, message ids and headers of a published record (pure, no I/O).

A record is published on ``<prefix>.<venue>.<type>.<instrument>`` with the record's own msgpack
wire form (the bytes a WAL frame holds for it) as payload. docs/bus.md has the layout for
consumers in other languages.

Tokens are made subject-safe: every byte outside ``A-Z a-z 0-9 _ -`` (UTF-8) becomes ``~`` and two
upper-case hex digits (``NIFTY 50`` -> ``NIFTY~2050``), and an empty token is ``~``, so a token
never holds ``.``, ``*``, ``>`` or white space and decodes back to its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from shriven.events import (
    WIRE_VERSION,
    BookSnapshot,
    KiteTick,
    Record,
    Status,
    stream_of,
)
from shriven.replay.rows import TYPE_NAMES

__all__ = [
    "HEADER_MSG_ID",
    "HEADER_RECV_NS",
    "HEADER_TYPE",
    "HEADER_VERSION",
    "LOB_STREAM",
    "MsgId",
    "SubjectCache",
    "check_prefix",
    "check_recorder_id",
    "decode_token",
    "encode_token",
    "headers_for",
    "parse_msg_id",
    "subject_for",
]

HEADER_MSG_ID: Final = "Nats-Msg-Id"
HEADER_TYPE: Final = "Shriven-Type"
HEADER_VERSION: Final = "Shriven-Version"
HEADER_RECV_NS: Final = "Shriven-Recv-Ns"

# The <type> token: replay's ``type`` column, one name per record type.
TYPE_TOKENS: Final[dict[type, str]] = TYPE_NAMES
# The message-id "stream" of book snapshots: their seq is the LOB WAL's own count, one per run
# for all venues, so it must not share a venue's tick count.
LOB_STREAM: Final = "lob"

_SAFE: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPED: Final = re.compile(r"~([0-9A-F]{2})")
# A prefix is one or more plain tokens joined by dots: what `<prefix>.>` can be a stream's subject.
_PREFIX: Final = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_RECORDER: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def encode_token(text: str) -> str:
    """``text`` as one subject token (see the module docstring)."""
    if not text:
        return "~"
    raw = text.encode("utf-8", "backslashreplace")
    if all(b in _SAFE for b in raw):
        return text
    return "".join(chr(b) if b in _SAFE else f"~{b:02X}" for b in raw)


def decode_token(token: str) -> str:
    """Inverse of :func:`encode_token`."""
    if token == "~":
        return ""
    if "~" not in token:
        return token
    raw = bytearray()
    i = 0
    while i < len(token):
        m = _ESCAPED.match(token, i)
        if m is not None:
            raw.append(int(m.group(1), 16))
            i += 3
        else:
            raw.extend(token[i].encode("utf-8"))
            i += 1
    return raw.decode("utf-8", "replace")


def check_prefix(prefix: str) -> str | None:
    """What is wrong with a subject prefix, or None when it is usable."""
    if _PREFIX.match(prefix):
        return None
    return (
        f"bad subject prefix {prefix!r}: use letters, digits, '_' or '-' in tokens joined by "
        "dots (e.g. shriven or desk1.md), no spaces, '*' or '>' (set SHRIVEN_NATS_SUBJECT_PREFIX)"
    )


def check_recorder_id(recorder: str) -> str | None:
    """What is wrong with a recorder id, or None: it goes in message ids (``:``-separated) and in
    the archive's directory names."""
    if _RECORDER.match(recorder):
        return None
    return (
        f"bad recorder id {recorder!r}: use 1-64 letters, digits, '_' or '-' "
        "(set SHRIVEN_NATS_RECORDER_ID)"
    )


def _instrument(record: Record) -> str | int:
    t = type(record)
    if t is KiteTick:
        return record.instrument_token  # type: ignore[union-attr]
    if t is Status or t is BookSnapshot:
        return record.instrument  # type: ignore[union-attr]
    return record.symbol  # type: ignore[union-attr]


def instrument_token(record: Record) -> str:
    inst = _instrument(record)
    return str(inst) if type(inst) is int else encode_token(inst)  # type: ignore[arg-type]


def venue_of(record: Record) -> str:
    """The <venue> token's text: the record's stream, or a book snapshot's venue."""
    return record.venue if type(record) is BookSnapshot else stream_of(record)  # type: ignore[union-attr]


def subject_for(prefix: str, record: Record) -> str:
    """``<prefix>.<venue>.<type>.<instrument>`` for a record."""
    return (
        f"{prefix}.{encode_token(venue_of(record))}.{TYPE_TOKENS[type(record)]}"
        f".{instrument_token(record)}"
    )


class SubjectCache:
    """:func:`subject_for` with each (type, venue, instrument)'s subject made once: escaping the
    tokens was a tenth of the publisher's time per record."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._subjects: dict[tuple[type, str, str | int], str] = {}

    def __call__(self, record: Record, venue: str) -> str:
        key = (type(record), venue, _instrument(record))
        subject = self._subjects.get(key)
        if subject is None:
            if len(self._subjects) > 100_000:
                self._subjects.clear()
            subject = self._subjects[key] = subject_for(self.prefix, record)
        return subject


@dataclass(frozen=True, slots=True)
class MsgId:
    """What identifies one record on the bus: recorder id, run (the ``recv_ns`` of the run's
    ``started`` marker; 0 before any), stream and seq."""

    recorder: str
    run: int
    stream: str
    seq: int

    def text(self) -> str:
        return f"{self.recorder}:{self.run}:{self.stream}:{self.seq}"


def parse_msg_id(text: str) -> MsgId | None:
    """A ``Nats-Msg-Id`` as :class:`MsgId`, or None when it is not one of ours."""
    parts = text.split(":")
    if len(parts) != 4:
        return None
    recorder, run, stream, seq = parts
    if check_recorder_id(recorder) is not None or not stream:
        return None
    try:
        return MsgId(recorder, int(run), stream, int(seq))
    except ValueError:
        return None


_VERSION_TEXT: Final = str(WIRE_VERSION)


def headers_for(msg_id: MsgId, record: Record) -> dict[str, str]:
    # Four headers: each costs the client a validation pass per message (nats-py); recorder and
    # run are in the message id.
    return {
        HEADER_MSG_ID: msg_id.text(),
        HEADER_TYPE: TYPE_TOKENS[type(record)],
        HEADER_VERSION: _VERSION_TEXT,
        HEADER_RECV_NS: str(record.recv_ns),
    }
