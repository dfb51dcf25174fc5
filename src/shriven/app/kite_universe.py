"""Kite start-up for ``shriven run`` and the universe job that keeps the subscriptions right.

The job watches the spot index ticks through a tap on the Kite ticker feed (:class:`SpotWatch`,
the feed's ``on_ticks``); when spot has moved far enough from the chain's ATM (the universe's
hysteresis rule), or a contract has expired, it hands the subscribe/unsubscribe diff to the
ticker adapter, which applies it on the live connections and writes a ``subscriptions_changed``
status. At 08:00 IST it refreshes the instrument dump and re-plans at once around the same ATM:
strikes or months the new dump lists come in with reason ``refresh``, without waiting for spot
to move.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from shriven.config import Settings, deprecation_warnings
from shriven.errors import ShrivenError
from shriven.events import KiteTick, kite_price_divisor
from shriven.feeds.kite.auth import KiteAuth, require_credentials
from shriven.feeds.kite.instruments import load_instruments, next_refresh_at
from shriven.feeds.kite.spot import kite_ltp
from shriven.feeds.kite.ticker import KiteTickerFeed
from shriven.logging import get_logger
from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.memory import freeze_long_lived
from shriven.universe import (
    InstrumentTable,
    SubscriptionPlan,
    build_plan,
    qualified_symbol,
    update_plan,
)
from shriven.universe.recorded import record_instruments

if TYPE_CHECKING:
    from shriven.app.parity_tap import ParityTap
    from shriven.replay.chain import ChainUniverse

log = get_logger("shriven.app.kite_universe")

_CHECK_EVERY_S = 2.0
_REFRESH_RETRY_S = 300.0


class SpotWatch:
    """The newest price (wire units) of each watched spot index, from the Kite feed's parsed
    ticks: the feed calls it with every binary message's ticks (``KiteTickerFeed(on_ticks=)``)."""

    __slots__ = ("last_wire", "tokens")

    def __init__(self, tokens: Iterable[int] = ()) -> None:
        self.tokens: set[int] = set(tokens)
        self.last_wire: dict[int, int] = {}

    def __call__(self, ticks: Sequence[KiteTick]) -> None:
        tokens = self.tokens
        if not tokens:
            return
        last = self.last_wire
        for tick in ticks:
            token = tick.instrument_token
            if token in tokens:
                last[token] = tick.last_price

    def price(self, token: int, default: float) -> float:
        """The last price seen for ``token`` in rupees (or dollars), else ``default``."""
        wire = self.last_wire.get(token)
        return wire / kite_price_divisor(token) if wire else default


async def spot_prices(
    auth: KiteAuth, table: InstrumentTable, symbols: Iterable[str], given: dict[str, float]
) -> dict[int, float]:
    """spot token -> price: ``given`` (by symbol as typed, from --spot) or Kite's LTP API. Every
    symbol resolves through :meth:`InstrumentTable.resolve_spot`, as in ``--dry-run``."""
    out = table.spot_keyed(given)
    for spot in table.resolve_spots(symbols):
        if spot.instrument_token not in out:
            out[spot.instrument_token] = await asyncio.to_thread(kite_ltp, auth, spot)
    return out


def build_plans(
    settings: Settings, table: InstrumentTable, prices: dict[int, float]
) -> list[SubscriptionPlan]:
    """The plan of every configured symbol at its price (by spot token)."""
    cfg = settings.pipeline
    plans = []
    for spot in table.resolve_spots(cfg.spot_symbols):
        price = prices.get(spot.instrument_token)
        if price is None:
            raise ShrivenError(
                f"no last price for {qualified_symbol(spot)} from the Kite quote API; check the "
                "symbol and the API subscription, or try again"
            )
        plans.append(
            build_plan(
                table,
                qualified_symbol(spot),
                price,
                strike_range=cfg.option_strike_range,
                expiry=cfg.option_expiry,
                mode=settings.kite_ticker_mode,
                class_modes=settings.kite_ticker_class_modes,
            )
        )
    return plans


async def add_kite(
    pipeline: Pipeline, settings: Settings, spots: dict[str, float] | None = None
) -> KiteUniverse:
    """Log in, load instruments, plan the universe and add the ticker feed and universe job."""
    feed, universe = await prepare_kite(pipeline, settings, spots)
    pipeline.add_feed(feed)
    pipeline.add_task("kite-universe", universe.run)
    tap = add_parity_tap(pipeline, settings)
    if tap is not None:
        tap.follow(universe.chains())
    return universe


def add_parity_tap(pipeline: Pipeline, settings: Settings) -> ParityTap | None:
    """The live parity watch (SHRIVEN_ANALYTICS_LIVE_PARITY), watching no chain until told to
    :meth:`~shriven.app.parity_tap.ParityTap.follow` one."""
    if not settings.analytics_live_parity:
        return None
    from shriven.app.parity_tap import ParityTap

    tap = ParityTap(
        [],
        settings.analytics_parity_threshold,
        settings.analytics_rate,
        pipeline.queue,
        pipeline.metrics.registry,
    )
    pipeline.add_tap(tap, durable=False)
    return tap


async def prepare_kite(
    pipeline: Pipeline, settings: Settings, spots: dict[str, float] | None = None
) -> tuple[KiteTickerFeed, KiteUniverse]:
    """Log in, load instruments and plan the universe: the ticker feed and the universe job,
    not yet running (add_kite adds them to the pipeline; kite_window runs them in its window)."""
    require_credentials(settings)
    auth = KiteAuth.from_settings(settings)
    session = await asyncio.to_thread(auth.session)
    instruments, _meta = await asyncio.to_thread(
        load_instruments,
        settings.cache_dir,
        settings.kite_api_root,
        authorization=session.authorization,
    )
    table = InstrumentTable(instruments)
    for line in deprecation_warnings(settings.pipeline):
        log.warning(line)
    prices = await spot_prices(auth, table, settings.pipeline.spot_symbols, spots or {})
    plans = build_plans(settings, table, prices)
    subscriptions: dict[int, str] = {}
    for plan in plans:
        subscriptions.update(plan.modes)
    spot = SpotWatch(p.spot.instrument_token for p in plans)
    feed = KiteTickerFeed.from_settings(
        settings, auth.access_token, pipeline.queue, subscriptions=subscriptions, on_ticks=spot
    )
    universe = KiteUniverse(
        settings, auth, table, plans, feed, Path(pipeline.config.data_dir), spot
    )
    await universe.record_instruments(plans)
    pipeline.sources.sections["kite_universe"] = lambda: (universe.report(), [])
    for plan in plans:
        log.info(
            "kite universe",
            symbol=plan.spot_symbol,
            spot=plan.spot_price,
            atm=plan.atm_strike,
            expiry=str(plan.option_expiry),
            instruments=len(plan),
            modes=plan.modes_by_class,
        )
        for line in plan.warnings:
            log.warning("kite universe: " + line, symbol=plan.spot_symbol)
    return feed, universe


class KiteUniverse:
    """Re-centres and rolls the plans while running, and refreshes instruments daily."""

    def __init__(
        self,
        settings: Settings,
        auth: KiteAuth,
        table: InstrumentTable,
        plans: list[SubscriptionPlan],
        feed: KiteTickerFeed,
        data_dir: Path,
        spot: SpotWatch,
    ) -> None:
        self.settings = settings
        self.auth = auth
        self.table = table
        self.plans = plans
        self.feed = feed
        self.spot = spot
        self.data_dir = data_dir
        self.changes = 0
        # spot symbol -> reason ("recentre", "rollover", "refresh") -> when (epoch s)
        self.last_change: dict[str, dict[str, float]] = {}
        self._failures = 0
        self._last_error: dict[int, str] = {}
        self.next_refresh = next_refresh_at(datetime.now(UTC)).timestamp()

    async def run(self) -> None:
        await self.feed.record_subscriptions("initial")
        while True:
            await asyncio.sleep(_CHECK_EVERY_S)
            try:
                if time.time() >= self.next_refresh:
                    await self.refresh_instruments()
                await self.check()
            except Exception as exc:  # a bug here must not stop re-centring for the day
                if self._failures == 0:
                    log.exception("kite universe check failed; retrying", error=str(exc))
                self._failures += 1

    def chains(self) -> list[ChainUniverse]:
        """Every underlying's chain in the instruments table, for the live parity watch."""
        from shriven.app.parity_tap import chain_universes

        return chain_universes(self.table, (p.spot.instrument_token for p in self.plans))

    def report(self) -> dict[str, dict[str, object]]:
        """/health's ``kite_universe``: per underlying, spot, ATM, strikes subscribed, expiry and
        when it last re-centred and rolled over (epoch seconds, None: not since start)."""
        out: dict[str, dict[str, object]] = {}
        for plan in self.plans:
            changes = self.last_change.get(plan.spot_symbol, {})
            out[plan.spot_symbol] = {
                "spot": self.spot.price(plan.spot.instrument_token, plan.spot_price),
                "atm": plan.atm_strike,
                "strikes": len({i.strike for i in (*plan.calls, *plan.puts)}),
                "instruments": len(plan),
                "expiry": str(plan.option_expiry) if plan.option_expiry else None,
                "last_recentre": changes.get("recentre"),
                "last_rollover": changes.get("rollover"),
            }
        return out

    async def record_instruments(self, plans: Iterable[SubscriptionPlan]) -> None:
        """Keep the store's own instruments table (``instruments.json``) holding everything
        subscribed, so replay can name contracts after they leave Kite's dump."""
        rows = [i for p in plans for i in p.instruments]
        try:
            await asyncio.to_thread(record_instruments, self.data_dir, rows)
        except OSError as exc:  # recording goes on; only names for replay are at stake
            log.error("cannot update the store's instruments table", error=str(exc))

    async def refresh_instruments(self) -> None:
        self.next_refresh = next_refresh_at(datetime.now(UTC)).timestamp()
        try:
            session = await asyncio.to_thread(self.auth.session)
            instruments, _meta = await asyncio.to_thread(
                load_instruments,
                self.settings.cache_dir,
                self.settings.kite_api_root,
                force=True,
                authorization=session.authorization,
            )
        except ShrivenError as exc:
            # Today's expiries and listings depend on it: try again soon, not tomorrow.
            self.next_refresh = time.time() + _REFRESH_RETRY_S
            log.error(
                "instruments refresh failed; keeping yesterday's, retrying",
                error=str(exc),
                in_s=_REFRESH_RETRY_S,
            )
            return
        self.table = InstrumentTable(instruments)
        log.info("instruments refreshed", rows=len(instruments))
        await self.check()  # re-plan now: new strikes or months are subscribed (reason refresh)
        freeze_long_lived()  # the new table, and yesterday's let go

    async def check(self) -> None:
        """Apply any re-centring or rollover the spot prices now call for, or what a refreshed
        table lists around the current ATM."""
        for i, plan in enumerate(self.plans):
            price = self.spot.price(plan.spot.instrument_token, plan.spot_price)
            try:
                new, diff = update_plan(plan, self.table, price)
                if diff:  # token -> its class's mode, from the plan
                    await self.feed.update_subscriptions(
                        diff.subscribe,
                        list(diff.unsubscribe),
                        reason=diff.reason,
                        symbol=plan.spot_symbol,
                    )
            except ShrivenError as exc:
                # e.g. no listed strikes, or the ticker's instrument limit: the plan stays as
                # subscribed and the next check tries again; the job itself must not die.
                if str(exc) != self._last_error.get(i):  # once per distinct problem
                    self._last_error[i] = str(exc)
                    log.error(
                        "cannot update the universe; keeping the current subscriptions",
                        symbol=plan.spot_symbol,
                        error=str(exc),
                    )
                continue
            self._last_error.pop(i, None)
            for line in sorted(set(new.warnings) - set(plan.warnings)):
                log.warning("kite universe: " + line, symbol=plan.spot_symbol)
            self.plans[i] = new
            if not diff:
                continue
            await self.record_instruments([new])
            self.changes += 1
            self.last_change.setdefault(plan.spot_symbol, {})[diff.reason] = time.time()
            log.info(
                "kite universe changed",
                symbol=plan.spot_symbol,
                reason=diff.reason,
                spot=price,
                atm=new.atm_strike,
                subscribe=len(diff.subscribe),
                unsubscribe=len(diff.unsubscribe),
            )
