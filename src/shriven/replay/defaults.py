"""Defaults the CLI shows in --help, in a module that imports nothing heavy: the CLI reads them
when it starts, before any command has chosen what it needs."""

from __future__ import annotations

from typing import Final

# Seconds an option quote stays current in a chain (older: "no quote in range").
DEFAULT_LOOKBACK_NS: Final = 300 * 1_000_000_000
