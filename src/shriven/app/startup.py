"""``shriven run``: from settings and options to a running pipeline with its feeds.

Start-up order: settings (with the simulators' loopback endpoints under ``--sim``), the pipeline
(which recovers the WAL and opens new segments), then per venue: Kite (instruments fresh, login or
cached token, spot prices, the subscription plan, the ticker adapter, and the universe job that
re-centres, rolls over and refreshes instruments at 08:00 IST while running); Binance (the
adapter for the configured symbols).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shriven.config import PipelineConfig, Settings, check_binance_symbols
from shriven.errors import ConfigError, CredentialsError
from shriven.feeds.base import FeedAdapter
from shriven.feeds.kite.instruments import ProgressFn
from shriven.logging import get_logger
from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.memory import fix_mmap_threshold
from shriven.wal import WalOptions

log = get_logger("shriven.app.startup")

Venue = Literal["kite", "binance", "all"]


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
    return ("kite", "binance") if option == "all" else (option,)


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
        if options.venue == "all":
            raise ConfigError(
                "--symbols needs --venue kite or --venue binance (with both venues, set "
                "SHRIVEN_PIPELINE__SPOT_SYMBOLS and SHRIVEN_BINANCE_SYMBOLS instead)"
            )
        if options.venue == "kite":
            updates["spot_symbols"] = options.symbols
        else:
            try:
                top["binance_symbols"] = check_binance_symbols(options.symbols)
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
        wanted = venues(options.venue)
        if "binance" in wanted and not settings.binance_symbols:
            if options.venue == "binance":
                raise ConfigError(
                    "no Binance symbols: pass --symbols BTCUSDT,ETHUSDT or set "
                    "SHRIVEN_BINANCE_SYMBOLS"
                )
            wanted = tuple(v for v in wanted if v != "binance")
            log.info("no Binance symbols configured; recording Kite only")
        check_data_dir(Path(settings.pipeline.data_dir), create=True)
        port = settings.health_port if options.health_port is None else options.health_port
        pipeline = Pipeline(
            settings.pipeline,
            wal=wal_options(settings.pipeline),
            health_host=settings.health_host,
            health_port=None if port < 0 else port,
            quiet=options.quiet,
            status_every_s=options.status_every_s,
        )
        pipeline.lock_store()  # before logging in: a second recorder fails at once
        if not options.sim:  # the simulators keep no exchange hours; pandas costs seconds
            await install_nse_calendar()
        _add_retention(pipeline, settings.pipeline)
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
        if "binance" in wanted:
            add_binance(pipeline, settings)
        pipeline.install_signal_handlers()
        return await pipeline.run(options.duration)


def add_windowed_kite(pipeline: Pipeline, settings: Settings, spots: dict[str, float]) -> None:
    """The Kite feed, logged in and connected only inside SHRIVEN_KITE_WINDOW on trading days."""
    from shriven.app.kite_universe import prepare_kite
    from shriven.app.kite_window import WindowedFeed
    from shriven.calendar import parse_window

    async def start() -> tuple[FeedAdapter, Callable[[], Awaitable[None]]]:
        feed, universe = await prepare_kite(pipeline, settings, spots)
        return feed, universe.run

    pipeline.add_feed(WindowedFeed(start, parse_window(settings.kite_window or "")))


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
    if venue in ("kite", "all"):
        kite = dry_run_report(
            s, strike_range=options.strike_range, spots=options.spots, warn=warn, progress=progress
        )
        parts.append(kite.removesuffix("\ndry run: nothing was connected or recorded"))
    if venue == "binance" or (venue == "all" and s.binance_symbols):
        if not s.binance_symbols:
            raise ConfigError(
                "no Binance symbols: pass --symbols BTCUSDT,ETHUSDT or set SHRIVEN_BINANCE_SYMBOLS"
            )
        parts.append(connection_report(BinanceFeedParams.from_settings(s), s.binance_symbols))
    parts.append("dry run: nothing was connected or recorded")
    return "\n\n".join(parts)


def run(settings: Settings, options: RunOptions) -> int:
    return asyncio.run(run_recorder(settings, options))
