"""The Kite instruments table for symbol selection, from the cache only (replay never fetches)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shriven.errors import ShrivenError
from shriven.replay.select import InstrumentRow

__all__ = ["cached_instruments"]


def cached_instruments(cache_dir: Path) -> tuple[Sequence[InstrumentRow] | None, str]:
    """The cached table, or None and a line saying why there is none (and what to do)."""
    try:
        from shriven.feeds.kite.instruments import load_cache
    except ImportError:
        return None, (
            "this build has no Kite instruments module, so Kite names cannot be looked up; "
            "select Kite instruments by token"
        )
    try:
        rows, _meta = load_cache(Path(cache_dir))
    except ShrivenError as exc:
        return None, f"no Kite instruments table ({exc}); Kite names cannot be looked up"
    return rows, ""
