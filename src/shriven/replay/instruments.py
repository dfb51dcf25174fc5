"""The Kite instruments table for symbol selection, from the cache only (replay never fetches)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shriven.errors import ShrivenError
from shriven.replay.select import InstrumentRow

__all__ = ["cached_instruments", "contract_note", "contract_places", "instruments_for"]


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


def instruments_for(
    cache_dir: Path | None, data_dir: Path
) -> tuple[Sequence[InstrumentRow] | None, str]:
    """The cached table (none without ``cache_dir``) plus the instruments the store itself
    recorded (``instruments.json``, which keeps contracts that have since expired out of Kite's
    dump). None and why when there is neither."""
    from shriven.universe.recorded import load_recorded

    cached, note = (
        cached_instruments(cache_dir)
        if cache_dir is not None
        else (None, "no Kite instruments cache given; Kite names cannot be looked up")
    )
    recorded = load_recorded(Path(data_dir))
    if not recorded:
        return cached, note
    if cached is None:
        return recorded, ""
    live = {r.instrument_token for r in cached}
    return [*cached, *(r for r in recorded if r.instrument_token not in live)], ""


def contract_note(data_dir: Path, key: str) -> str:
    """What the store's Binance instruments table says of ``key`` (``binance-coinm:BTCUSD_PERP``)
    as one line, or "" when it has nothing on it."""
    from shriven.universe.binance_recorded import load_listings

    venue, _, symbol = key.partition(":")
    row = load_listings(Path(data_dir)).get(venue, {}).get(symbol)
    if row is None:
        return ""
    kind = row.contract_type or "spot"
    parts = [f"{key}: {kind} of {row.pair}", f"tick size {row.tick_size or '?'}"]
    parts.append(f"lot size {row.lot_size or '?'}")
    if row.contract_size:
        parts.append(f"contract size {row.contract_size}")
    if row.delivery_date:
        from zoneinfo import ZoneInfo

        from shriven.replay.times import format_ns

        parts.append(f"delivery {format_ns(row.delivery_date * 1_000_000, ZoneInfo('UTC'))}")
    return ", ".join(parts) + " (the store's Binance instruments table)"


def contract_places(data_dir: Path, key: str) -> tuple[int | None, int | None]:
    """Decimals of ``key``'s tick size and lot size in the store's Binance instruments table
    (``"0.10"`` -> 1), so a book prints as the venue quotes the contract; None: not known."""
    from shriven.universe.binance_recorded import load_listings

    venue, _, symbol = key.partition(":")
    row = load_listings(Path(data_dir)).get(venue, {}).get(symbol)
    if row is None:
        return None, None
    return _places(row.tick_size), _places(row.lot_size)


def _places(step: str) -> int | None:
    whole, dot, frac = step.strip().partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or float(step) <= 0:
        return None
    return len(frac.rstrip("0")) if dot else 0
