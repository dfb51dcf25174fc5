"""A bus payload checked as a record without decoding it (pure, no I/O).

The sink stores what it receives as bytes: a payload is a record's msgpack wire form
(``[type, version, recv_ns, seq, field, ...]``, docs/wal-format.md), which is what a WAL frame
holds for it, so decoding it into a record and encoding it again bought nothing but time (more
than half of the sink's own CPU per record). What it must know it reads from the first bytes,
and :func:`record_head` makes sure the payload is one whole msgpack array with the layout a
record of its type needs and decodes as that record (the C reader where built, without the
re-encoding), so a bad payload is refused on its own and never reaches a frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgpack

from shriven.events import REQUIRED_FIELDS, WIRE_VERSION, decode_batch, wire_stream

__all__ = ["PayloadError", "RecordHead", "record_head"]


class PayloadError(ValueError):
    """A payload that is not one record's wire form."""


@dataclass(frozen=True, slots=True)
class RecordHead:
    type: int
    recv_ns: int
    seq: int
    stream: str  # as events.wire_stream names it (a book snapshot's: its venue)


_NEED: Final = {t: 4 + n for t, n in REQUIRED_FIELDS.items()}
# msgpack int encodings after their first byte: (bytes, signed)
_INTS: Final = {
    0xCC: (1, False), 0xCD: (2, False), 0xCE: (4, False), 0xCF: (8, False),
    0xD0: (1, True), 0xD1: (2, True), 0xD2: (4, True), 0xD3: (8, True),
}  # fmt: skip


def _int(b: bytes, i: int) -> tuple[int, int]:
    x = b[i]
    if x < 0x80:  # positive fixint
        return x, i + 1
    if x >= 0xE0:
        return x - 0x100, i + 1
    got = _INTS.get(x)
    if got is None:
        raise PayloadError(f"expected a msgpack integer at byte {i}, found 0x{x:02x}")
    n, signed = got
    end = i + 1 + n
    if end > len(b):
        raise PayloadError("payload ends inside an integer")
    return int.from_bytes(b[i + 1 : end], "big", signed=signed), end


def _int_or_str(b: bytes, i: int) -> int | str:
    x = b[i]
    if 0xA0 <= x <= 0xBF:
        start, n = i + 1, x & 0x1F
    elif x == 0xD9:
        start, n = i + 2, b[i + 1]
    elif x == 0xDA:
        start, n = i + 3, int.from_bytes(b[i + 1 : i + 3], "big")
    else:
        return _int(b, i)[0]
    try:
        return b[start : start + n].decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("a text field is not UTF-8") from None


def record_head(payload: bytes) -> RecordHead:
    """Type, receive time, seq and stream of one record's wire form; PayloadError when
    ``payload`` is not exactly one msgpack array of a known record type, of this shriven's
    layout version, with the fields that type requires, each of the type a reader decodes."""
    try:
        x = payload[0]
        if 0x90 <= x <= 0x9F:
            count, i = x & 0x0F, 1
        elif x == 0xDC:
            count, i = int.from_bytes(payload[1:3], "big"), 3
        else:
            raise PayloadError("payload is not a msgpack array")
        kind = payload[i]
        need = _NEED.get(kind)  # every type is a positive fixint: its own byte
        if need is None:
            kind = _int(payload, i)[0]
            raise PayloadError(f"unknown record type {kind}")
        if count < need:
            raise PayloadError(f"record of type {kind} has {count - 4} fields, needs {need - 4}")
        version = payload[i + 1]
        if version != WIRE_VERSION:
            version = _int(payload, i + 1)[0]
            raise PayloadError(f"record layout version {version} is not {WIRE_VERSION}")
        i += 2
        if payload[i] == 0xCF:  # a receive time in ns is a uint64 (the common case, inline)
            recv_ns = int.from_bytes(payload[i + 1 : i + 9], "big")
            i += 9
        else:
            recv_ns, i = _int(payload, i)
        seq, i = _int(payload, i)
        stream = _STREAMS.get(kind)
        if stream is None:
            stream = str(_int_or_str(payload, i))
        # the whole payload must be that one array: skipping it (C, no objects made) must end
        # exactly at the payload's end
        unpacker = msgpack.Unpacker()
        unpacker.feed(payload)
        unpacker.skip()
        if unpacker.tell() != len(payload):
            raise PayloadError(f"{len(payload) - unpacker.tell()} bytes after the record")
        # and its fields must be what a reader decodes (in C where built): stored, a record
        # that does not decode makes its whole frame, the good records with it, unreadable
        try:
            decode_batch(b"\x91" + payload)
        except (ValueError, msgpack.UnpackException) as exc:
            raise PayloadError(f"the record does not decode ({exc})") from None
    except IndexError:
        raise PayloadError("payload is cut short") from None
    except msgpack.OutOfData:
        raise PayloadError("payload is cut short") from None
    except (ValueError, msgpack.UnpackException) as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError(f"payload is not msgpack ({exc})") from None
    return RecordHead(kind, recv_ns, seq, stream)


# events.wire_stream's table: a type's fixed stream, else the fifth field (its venue)
_STREAMS: Final = {t: s for t in REQUIRED_FIELDS if (s := wire_stream((t, 0, 0, 0, "")))}
