"""``shriven run``: from settings and options to a running pipeline with its feeds.

Start-up order: settings (with the simulators' loopback endpoints under ``--sim``), the pipeline
(which recovers the WAL and opens new segments), then per venue: Kite (instruments fresh, login or
cached token, spot prices, the subscription plan, the ticker adapter, and the universe job that
re-centres, rolls over and refreshes instruments at 08:00 IST while running); each Binance venue
(spot, USD-M and COIN-M futures: the symbols checked against the venue's exchangeInfo, roll
aliases resolved, the listings kept in the store's Binance instruments table, then the adapter).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shriven.app.book_index import add_index_metrics, indexed_store
from shriven.config import PipelineConfig, Settings, check_binance_symbols, check_futures_symbols
from shriven.errors import ConfigError, CredentialsError, ShrivenError
from shriven.events import BINANCE_VENUES, SeqCounter
from shriven.feeds.base import FeedAdapter
from shriven.feeds.kite.instruments import ProgressFn
from shriven.logging import get_logger
from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.memory import fix_mmap_threshold, freeze_long_lived
from shriven.replay.indexer import SidecarIndexer
from shriven.wal import WalOptions

if TYPE_CHECKING:
    from shriven.feeds.binance.feed import BinanceFeedParams
    from shriven.feeds.binance.listings import Resolved

log = get_logger("shriven.app.startup")

# "kite", one of BINANCE_VENUES, "all", or several of them comma-separated.
Venue = str
VENUE_NAMES = ("kite", *BINANCE_VENUES)
# The setting holding each Binance venue's symbols.
SYMBOL_SETTINGS = {
    "binance": "binance_symbols",
    "binance-usdm": "binance_usdm_symbols",
    "binance-coinm": "binance_coinm_symbols",
}
_SYMBOL_ENV = {v: f"SHRIVEN_{name.upper()}" for v, name in SYMBOL_SETTINGS.items()}
_TITLE = {"binance": "Binance", "binance-usdm": "Binance USD-M", "binance-coinm": "Binance COIN-M"}
_EXAMPLE = {
    "binance": "BTCUSDT,ETHUSDT",
    "binance-usdm": "BTCUSDT,ETHUSDT",
    "binance-coinm": "BTCUSD_PERP",
}


@dataclass(slots=True)
class RunOptions:
    venue: Venue = "all"
    symbols: list[str] = field(default_factory=list)
    strike_range: int | None = None
    sim: bool = False
    duration: float | None = None
    quiet: bool = False
    data_dir: Path | None = None
    health_port: int | None = None  # None: the configured port; -1: no health server
    status_every_s: float = 5.0
    sim_rate: float | None = None  # Kite simulator ticks per second
    spots: dict[str, float] = field(default_factory=dict)  # spot price overrides (Kite)
    serve_port: int | None = None  # run --serve: the live server's port
    publish: list[str] = field(default_factory=list)  # NATS URLs: publish what is durable


def check_data_dir(path: Path, *, create: bool) -> None:
    """Raise ConfigError when ``path`` cannot be recorded into: it or a parent is a file, it
    cannot be created, or it is not writable. ``create`` makes it (``run``); without it nothing
    is touched (``run --dry-run``)."""
    fix = "give a writable directory with --data-dir or SHRIVEN_PIPELINE__DATA_DIR"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == path else f"is inside {existing}, which is a file"
        raise ConfigError(f"cannot record into {path}: it {what}; {fix}")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {path}: {exc.strerror}; {fix}") from None
    target = path if path.is_dir() else existing
    if not os.access(target, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot record into {path}: {target} is not writable; {fix}")
    for name in ("ticks", "lob"):  # the WAL directories a writer opens (wal.store)
        wal_dir = path / name
        if wal_dir.exists() and not wal_dir.is_dir():
            raise ConfigError(f"cannot record into {path}: {wal_dir} is a file; {fix}")
        if wal_dir.is_dir() and not os.access(wal_dir, os.W_OK | os.X_OK):
            raise ConfigError(f"cannot record into {path}: {wal_dir} is not writable; {fix}")


def wal_options(config: PipelineConfig) -> WalOptions:
    """The WAL options a recording opens its store with. The recorder loop times the fsyncs
    itself (``config.fsync_policy``, see pipeline/recorder.py), so the WAL's policy is
    ``caller``; with ``never`` nothing is fsynced before shutdown."""
    return WalOptions(
        segment_size=config.wal_segment_size,
        compression=config.enable_compression,
        fsync_policy="never" if config.fsync_policy == "never" else "caller",
        fsync_interval_ms=config.fsync_interval_ms,
    )


def venues(option: Venue) -> tuple[str, ...]:
    """The venues ``--venue`` names; ConfigError for a name that is none."""
    if option == "all":
        return VENUE_NAMES
    chosen = tuple(dict.fromkeys(v.strip() for v in option.split(",") if v.strip()))
    bad = [v for v in chosen if v not in VENUE_NAMES]
    if bad or not chosen:
        raise ConfigError(
            f"unknown venue {bad[0] if bad else option!r}: use {', '.join(VENUE_NAMES)}, all, or "
            "several comma-separated"
        )
    return chosen


def binance_symbols(settings: Settings, venue: str) -> list[str]:
    return list(getattr(settings, SYMBOL_SETTINGS[venue]))


def resolve_settings(settings: Settings, options: RunOptions) -> Settings:
    """Apply command-line options on top of the settings (validated like the settings)."""
    pipeline = settings.pipeline
    updates: dict[str, object] = {}
    if options.data_dir is not None:
        updates["data_dir"] = options.data_dir
    elif options.sim:
        # Simulated data never mixes with real recordings.
        updates["data_dir"] = Path(pipeline.data_dir).parent / "sim"
    if options.strike_range is not None:
        if options.strike_range < 0:
            raise ConfigError(f"bad --strike-range {options.strike_range}: use 0 or more")
        updates["option_strike_range"] = options.strike_range
    top: dict[str, object] = {}
    if options.symbols:
        chosen = venues(options.venue)
        if options.venue == "all" or len(chosen) != 1:
            raise ConfigError(
                "--symbols needs --venue kite or --venue binance (or binance-usdm, "
                "binance-coinm: one venue); with several venues, set "
                "SHRIVEN_PIPELINE__SPOT_SYMBOLS, SHRIVEN_BINANCE_SYMBOLS, "
                "SHRIVEN_BINANCE_USDM_SYMBOLS and SHRIVEN_BINANCE_COINM_SYMBOLS instead"
            )
        if chosen[0] == "kite":
            updates["spot_symbols"] = options.symbols
        else:
            check = check_binance_symbols if chosen[0] == "binance" else check_futures_symbols
            try:
                top[SYMBOL_SETTINGS[chosen[0]]] = check(options.symbols)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    if updates:
        top["pipeline"] = pipeline.model_copy(update=updates)
    return settings.model_copy(update=top) if top else settings


async def run_recorder(settings: Settings, options: RunOptions) -> int:
    """Run ``shriven run`` to completion; returns the exit code."""
    fix_mmap_threshold()
    async with contextlib.AsyncExitStack() as stack:
        if options.sim:
            from shriven.app.simulators import start_simulators

            settings = await start_simulators(stack, settings, options)
        settings = resolve_settings(settings, options)
        wanted = binance_venues_with_symbols(settings, options)
        check_data_dir(Path(settings.pipeline.data_dir), create=True)
        port = settings.health_port if options.health_port is None else options.health_port
        indexer = SidecarIndexer()  # each sealed tick segment's book index, in a child process
        stack.callback(indexer.close)
        data_dir = Path(settings.pipeline.data_dir)
        pipeline = Pipeline(
            settings.pipeline,
            open_store=indexed_store(data_dir, wal_options(settings.pipeline), indexer),
            health_host=settings.health_host,
            health_port=None if port < 0 else port,
            quiet=options.quiet,
            status_every_s=options.status_every_s,
        )
        add_index_metrics(pipeline, indexer)
        pipeline.lock_store()  # before logging in: a second recorder fails at once
        if not options.sim:  # the simulators keep no exchange hours; pandas costs seconds
            await install_nse_calendar()
        _add_retention(pipeline, settings.pipeline)
        server = None
        if options.serve_port is not None:  # also before logging in: a taken port fails at once
            from shriven.app.serve import live_server_process

            books = pipeline.writer.books
            server = live_server_process(
                settings, options.serve_port, lambda: books.snapshots(time.time_ns(), SeqCounter())
            )
            await server.start()
            stack.push_async_callback(server.stop)
            pipeline.sources.sections["serve"] = server.health
        if "kite" in wanted and settings.kite_window:
            add_windowed_kite(pipeline, settings, options.spots)
        elif "kite" in wanted:
            from shriven.app.kite_universe import add_kite

            try:
                await add_kite(pipeline, settings, options.spots)
            except CredentialsError as exc:
                if options.venue != "all":
                    raise
                raise CredentialsError(
                    f"{exc}; or record Binance alone with --venue binance"
                ) from None
        recorded: dict[str, list[str]] = {}
        for venue in BINANCE_VENUES:
            if venue in wanted:
                recorded[venue] = await add_binance_venue(pipeline, settings, venue)
        if settings.analytics_live_basis and "binance" in recorded and len(recorded) > 1:
            from shriven.app.basis_tap import add_basis_tap

            add_basis_tap(pipeline, settings.analytics_basis_threshold_bps, recorded)
        if server is not None:
            pipeline.add_payload_tap(server.tap, prompt=True)
            pipeline.add_tap(server.record_tap, durable=False)
            print(f"shriven: serving live data at {server.url}", file=sys.stderr, flush=True)
        pipeline.install_signal_handlers()
        freeze_long_lived()  # instruments, plans, modules: out of every full collection's way
        if options.publish:
            from shriven.app.bus import add_publisher, bus_options, run_with_publisher

            publisher = add_publisher(pipeline, bus_options(settings, options.publish))
            return await run_with_publisher(lambda: pipeline.run(options.duration), publisher)
        return await pipeline.run(options.duration)


def add_windowed_kite(
    pipeline: Pipeline,
    settings: Settings,
    spots: dict[str, float],
    clock: Callable[[], float] = time.time,
) -> None:
    """The Kite feed, logged in and connected only inside SHRIVEN_KITE_WINDOW on trading days,
    with the live parity watch following the universe each window plans."""
    from shriven.app.kite_universe import add_parity_tap, prepare_kite
    from shriven.app.kite_window import WindowedFeed
    from shriven.calendar import parse_window

    tap = add_parity_tap(pipeline, settings)

    async def start() -> tuple[FeedAdapter, Callable[[], Awaitable[None]]]:
        feed, universe = await prepare_kite(pipeline, settings, spots)
        if tap is not None:
            tap.follow(universe.chains())
        freeze_long_lived()  # the window's instruments and plans
        return feed, universe.run

    window = parse_window(settings.kite_window or "")
    pipeline.add_feed(WindowedFeed(start, window, clock=clock))


async def install_nse_calendar() -> None:
    """Read NSE's sessions (holidays, special sessions) for the stale-feed check, off the event
    loop (the library imports pandas: seconds). Without the library: Monday to Friday."""
    from datetime import date, timedelta

    from shriven.calendar import install, load_nse_calendar

    today = date.today()
    try:
        calendar = await asyncio.to_thread(
            load_nse_calendar, today - timedelta(days=7), today + timedelta(days=400)
        )
    except Exception as exc:  # ImportError, or a library that changed its interface
        log.warning(
            "no NSE calendar: holidays count as trading days (install pandas-market-calendars)",
            error=str(exc)[:200],
        )
        return
    install(calendar)
    log.debug("NSE calendar", first=str(calendar.first), last=str(calendar.last))


def _add_retention(pipeline: Pipeline, config: PipelineConfig) -> None:
    if config.retention_keep_days is None and config.retention_keep_size is None:
        return
    from shriven.app.retention import add_retention
    from shriven.sizes import parse_size

    size = config.retention_keep_size
    add_retention(
        pipeline,
        config.retention_keep_days,
        None if size is None else parse_size(size),
        config.retention_check_secs,
    )


def binance_venues_with_symbols(settings: Settings, options: RunOptions) -> tuple[str, ...]:
    """The venues to record: a Binance venue without symbols is an error when chosen by name,
    and left out under ``--venue all``."""
    wanted = venues(options.venue)
    for venue in BINANCE_VENUES:
        if venue in wanted and not binance_symbols(settings, venue):
            if options.venue != "all":
                raise ConfigError(
                    f"no {_TITLE[venue]} symbols: pass --symbols {_EXAMPLE[venue]} or set "
                    f"{_SYMBOL_ENV[venue]}"
                )
            wanted = tuple(v for v in wanted if v != venue)
    return wanted


async def add_binance_venue(pipeline: Pipeline, settings: Settings, venue: str) -> list[str]:
    """Check the venue's symbols against its exchangeInfo (ConfigError for one not listed),
    resolve roll aliases, keep the listings in the store, and add the venue's feed; returns the
    symbols it records."""
    from shriven.feeds.binance.feed import BinanceFeed, BinanceFeedParams

    params = BinanceFeedParams.from_settings(settings, venue)
    symbols = binance_symbols(settings, venue)
    resolved = await check_listings(params, symbols)
    if resolved is not None:
        symbols = resolved.symbols
        params.aliases = dict(resolved.aliases)
        params.deliveries = {
            s: row.delivery_date for s, row in resolved.listings.items() if row.delivery_date
        }
        from shriven.universe.binance_recorded import record_listings

        try:
            await asyncio.to_thread(
                record_listings,
                Path(settings.pipeline.data_dir),
                venue,
                resolved.listings.values(),
            )
        except OSError as exc:
            log.error("cannot update the store's Binance instruments table", error=str(exc))
    feed = BinanceFeed(params, symbols, pipeline.queue)
    pipeline.add_feed(feed)
    log.info(f"{venue} feed", symbols=symbols, aliases=params.aliases or None, ws=params.ws_url)
    return symbols


async def check_listings(params: BinanceFeedParams, symbols: list[str]) -> Resolved | None:
    """The venue's exchangeInfo resolved against ``symbols`` (see feeds/binance/listings.py);
    None when the venue does not answer it (the symbols are then used as given: a loopback
    server may serve only depth and streams), unless an alias needs it."""
    from shriven.feeds.binance.listings import alias_parts, resolve_symbols
    from shriven.feeds.binance.parse import BinanceMessageError
    from shriven.feeds.binance.rest import SnapshotClient
    from shriven.feeds.binance.streams import parse_exchange_info

    m = params.market
    client = SnapshotClient(
        params.api_root, initial_backoff=0.2, max_backoff=2.0, venue=params.venue, timeout=10.0
    )
    try:
        body, _ns = await asyncio.wait_for(
            client.get(m.exchange_info_path, {}, weight=1, what="exchangeInfo"), 15.0
        )
        info = parse_exchange_info(body)
    except (ShrivenError, BinanceMessageError, TimeoutError, OSError) as exc:
        aliases = [s for s in symbols if alias_parts(s) is not None]
        if aliases:
            raise ConfigError(
                f"{params.venue}: cannot resolve {aliases[0]} without the venue's exchangeInfo "
                f"({exc}); configure the contract itself or check SHRIVEN_BINANCE_*_API_ROOT"
            ) from None
        log.warning(
            "cannot check symbols against exchangeInfo; using them as given",
            venue=params.venue,
            error=str(exc)[:200],
        )
        return None
    finally:
        await client.close()
    if info.weight_per_minute and not params.weight_limit:
        params.weight_limit = info.weight_per_minute
    return resolve_symbols(params.venue, symbols, info)


def add_binance(pipeline: Pipeline, settings: Settings) -> None:
    from shriven.feeds.binance.feed import BinanceFeed

    feed = BinanceFeed(settings, settings.binance_symbols, pipeline.queue)
    pipeline.add_feed(feed)
    log.info("binance feed", symbols=settings.binance_symbols, ws=settings.binance_ws_url)


def dry_run(
    settings: Settings,
    options: RunOptions,
    *,
    warn: Callable[[str], None] = lambda line: None,
    progress: ProgressFn | None = None,
) -> str:
    """What `shriven run --dry-run` prints: Kite's plan (with --venue kite or all) and the
    Binance connections (with --venue binance, or all when Binance symbols are set), from the
    settings as `run` resolves them: what `run` refuses, the dry run refuses too. Connects to
    nothing but Kite's REST API (instruments, LTP); ``warn`` gets each warning line."""
    from shriven.app.kite_plans import dry_run_report
    from shriven.feeds.binance.feed import BinanceFeedParams, connection_report

    s = resolve_settings(settings, options)
    check_data_dir(Path(s.pipeline.data_dir), create=False)
    venue = options.venue
    parts = []
    if "kite" in venues(venue):
        kite = dry_run_report(
            s, strike_range=options.strike_range, spots=options.spots, warn=warn, progress=progress
        )
        parts.append(kite.removesuffix("\ndry run: nothing was connected or recorded"))
    wanted = binance_venues_with_symbols(s, options)
    for name in BINANCE_VENUES:
        if name in wanted:
            params = BinanceFeedParams.from_settings(s, name)
            parts.append(connection_report(params, binance_symbols(s, name)))
    parts.append("dry run: nothing was connected or recorded")
    return "\n\n".join(parts)


def run(settings: Settings, options: RunOptions) -> int:
    return asyncio.run(run_recorder(settings, options))
