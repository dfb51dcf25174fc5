"""Server-to-client websocket frames (RFC 6455 section 5.2), built once and written as they are
to every client that gets the message. Pure: no I/O.

A server's frames are not masked, so one message's frame is the same bytes for every client:
the live fan-out frames each message once per group of clients with equal subscriptions, not
once per client (at 100 clients that per-client framing and its send call were most of the
server's CPU).
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["HEARTBEAT_FRAME", "binary_frame", "frame", "text_frame"]

_TEXT: Final = 0x1
_BINARY: Final = 0x2
_FIN: Final = 0x80
_U16: Final = struct.Struct("!BBH")
_U64: Final = struct.Struct("!BBQ")


def _frame(opcode: int, data: bytes) -> bytes:
    n = len(data)
    if n < 126:
        return bytes((_FIN | opcode, n)) + data
    if n < 65536:
        return _U16.pack(_FIN | opcode, 126, n) + data
    return _U64.pack(_FIN | opcode, 127, n) + data


def binary_frame(payload: bytes) -> bytes:
    """One final, unmasked binary frame holding ``payload``."""
    return _frame(_BINARY, payload)


def text_frame(text: str) -> bytes:
    """One final, unmasked text frame holding ``text`` as UTF-8."""
    return _frame(_TEXT, text.encode())


def frame(message: bytes | str) -> bytes:
    """A binary frame for bytes, a text frame for str."""
    return binary_frame(message) if type(message) is bytes else text_frame(message)  # type: ignore[arg-type]


HEARTBEAT_FRAME: Final = binary_frame(b"\x00")  # Kite's 1-byte heartbeat
