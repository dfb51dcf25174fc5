"""Sizes as people write them (``200GB``, ``1.5GiB``, ``100MB``): the one parser for every option
and setting that takes one."""

from __future__ import annotations

import re
from typing import Final

from shriven.errors import ConfigError

_SIZE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?")
_UNITS: Final = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}  # fmt: skip


def parse_size(text: str, what: str = "--keep-size") -> int:
    """``50GB``, ``1.5TiB``, ``1000000`` -> bytes; ConfigError naming ``what`` otherwise."""
    m = _SIZE.fullmatch(str(text).strip().lower())
    if m is None:
        raise ConfigError(f"bad {what} {text!r}: give a size such as 50GB, 500MiB or 1000000")
    return int(float(m.group(1)) * _UNITS[m.group(2) or "b"])


def human_bytes(n: float) -> str:
    """``12.3 MB`` (decimal units): the one way the console line and ``monitor`` show sizes."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
