"""Reading recorded data back: time ranges in a deterministic order, exports, and order books
rebuilt at any instant from snapshots plus recorded changes.

``replay_range(data_dir, sink, zone, ...)`` writes a time range in one format, ``replay_book``
gives a book at an instant and ``verify_store`` checks every snapshot (see api.py): the CLI and
the Python API call the same functions. ``replay_chain`` gives an option chain with IV and Greeks
at an instant or on a clock grid (chain_api.py), ``replay_arb`` the put-call parity violations
of a range (arb.py), ``replay_features`` a book feature series (features_series.py).
``reconstruct_lob_from_ticks(symbol, start, end)`` returns the book at ``end``;
``iter_lob_states(symbol, start, end)`` yields every state in between (see reconstruct.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shriven.lazy import lazy_exports

if TYPE_CHECKING:
    from shriven.replay.api import (
        BookResult,
        IndexResult,
        ReplayResult,
        VerifyResult,
        index_store,
        replay_book,
        replay_range,
        verify_store,
    )
    from shriven.replay.arb import ArbResult, replay_arb
    from shriven.replay.books import DEFAULT_MARGIN_NS, BookState, VerifyReport, verify_books
    from shriven.replay.chain import DEFAULT_RATE, ChainSnapshot
    from shriven.replay.chain_api import ChainResult, chain_instants, parse_every, replay_chain
    from shriven.replay.defaults import DEFAULT_LOOKBACK_NS
    from shriven.replay.export import FORMATS
    from shriven.replay.features_series import FeaturesResult, replay_features
    from shriven.replay.features_view import render_book
    from shriven.replay.reconstruct import (
        BookAt,
        book_at,
        book_states,
        iter_lob_states,
        reconstruct_lob_from_ticks,
    )
    from shriven.replay.select import Selection, parse_kinds, resolve_symbols
    from shriven.replay.store import StoreReader
    from shriven.replay.times import format_ns, load_zone, parse_instant, zone_label

# Each name loads from its module at first use (shriven/lazy.py says why).
__getattr__ = lazy_exports(
    __name__,
    {
        "BookResult": "shriven.replay.api",
        "IndexResult": "shriven.replay.api",
        "ReplayResult": "shriven.replay.api",
        "VerifyResult": "shriven.replay.api",
        "index_store": "shriven.replay.api",
        "replay_book": "shriven.replay.api",
        "replay_range": "shriven.replay.api",
        "verify_store": "shriven.replay.api",
        "ArbResult": "shriven.replay.arb",
        "replay_arb": "shriven.replay.arb",
        "DEFAULT_MARGIN_NS": "shriven.replay.books",
        "BookState": "shriven.replay.books",
        "VerifyReport": "shriven.replay.books",
        "verify_books": "shriven.replay.books",
        "DEFAULT_LOOKBACK_NS": "shriven.replay.defaults",
        "DEFAULT_RATE": "shriven.replay.chain",
        "ChainSnapshot": "shriven.replay.chain",
        "ChainResult": "shriven.replay.chain_api",
        "chain_instants": "shriven.replay.chain_api",
        "parse_every": "shriven.replay.chain_api",
        "replay_chain": "shriven.replay.chain_api",
        "FORMATS": "shriven.replay.export",
        "FeaturesResult": "shriven.replay.features_series",
        "replay_features": "shriven.replay.features_series",
        "render_book": "shriven.replay.features_view",
        "BookAt": "shriven.replay.reconstruct",
        "book_at": "shriven.replay.reconstruct",
        "book_states": "shriven.replay.reconstruct",
        "iter_lob_states": "shriven.replay.reconstruct",
        "reconstruct_lob_from_ticks": "shriven.replay.reconstruct",
        "Selection": "shriven.replay.select",
        "parse_kinds": "shriven.replay.select",
        "resolve_symbols": "shriven.replay.select",
        "StoreReader": "shriven.replay.store",
        "format_ns": "shriven.replay.times",
        "load_zone": "shriven.replay.times",
        "parse_instant": "shriven.replay.times",
        "zone_label": "shriven.replay.times",
    },
)

__all__ = [
    "DEFAULT_LOOKBACK_NS",
    "DEFAULT_MARGIN_NS",
    "DEFAULT_RATE",
    "FORMATS",
    "ArbResult",
    "BookAt",
    "BookResult",
    "BookState",
    "ChainResult",
    "ChainSnapshot",
    "FeaturesResult",
    "IndexResult",
    "ReplayResult",
    "Selection",
    "StoreReader",
    "VerifyReport",
    "VerifyResult",
    "book_at",
    "book_states",
    "chain_instants",
    "format_ns",
    "index_store",
    "iter_lob_states",
    "load_zone",
    "parse_every",
    "parse_instant",
    "parse_kinds",
    "reconstruct_lob_from_ticks",
    "render_book",
    "replay_arb",
    "replay_book",
    "replay_chain",
    "replay_features",
    "replay_range",
    "resolve_symbols",
    "verify_books",
    "verify_store",
    "zone_label",
]
