"""``shriven run --sim``: the built-in Kite and Binance simulators on loopback, and settings that
point the real adapters at them with the simulators' own (fake) credentials.

The simulated run keeps its token and instruments cache under ``<cache_dir>/sim`` and (unless
``--data-dir`` is given) records into ``<data_dir>/../sim``, so it never touches real data.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import SecretStr

from shriven.config import Settings
from shriven.logging import get_logger

if TYPE_CHECKING:
    from shriven.app.startup import RunOptions
    from shriven.sim.binance import BinanceSimulator
    from shriven.sim.kite_rest import KiteSimulator
    from shriven.sim.kite_ticker import KiteTickerSimulator
    from shriven.sim.surface import PricedInstrument

log = get_logger("shriven.pipeline.sim")

SIM_SEED = 7
SIM_BINANCE_SYMBOLS = ("BTCUSDT", "ETHUSDT")
SIM_FUTURES_SYMBOLS = {
    "binance-usdm": ("BTCUSDT", "ETHUSDT"),
    "binance-coinm": ("BTCUSD_PERP", "ETHUSD_PERP"),
}
# venue -> the settings pointing it at its simulator: (api root, ws url, symbols)
_FUTURES_SETTINGS = {
    "binance-usdm": ("binance_usdm_api_root", "binance_usdm_ws_url", "binance_usdm_symbols"),
    "binance-coinm": ("binance_coinm_api_root", "binance_coinm_ws_url", "binance_coinm_symbols"),
}


class Simulators:
    """The simulators one run needs, and the settings that point shriven at them."""

    def __init__(self, seed: int = SIM_SEED) -> None:
        self.seed = seed
        self.kite: KiteSimulator | None = None
        self.ticker: KiteTickerSimulator | None = None
        self.binance: BinanceSimulator | None = None
        self.futures: dict[str, BinanceSimulator] = {}  # venue -> its simulator
        self._stack = contextlib.AsyncExitStack()

    async def start(
        self,
        settings: Settings,
        venues: Sequence[str],
        *,
        binance_symbols: Sequence[str] = (),
        futures_symbols: dict[str, Sequence[str]] | None = None,
        kite_ticks_per_second: float = 2_000.0,
        keep_ledgers: bool = False,
    ) -> Settings:
        """Start the simulators for ``venues``; returns ``settings`` pointed at them."""
        # The simulators' aiohttp access logs are noise on a recorder's console.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        updates: dict[str, object] = {"cache_dir": settings.cache_dir / "sim"}
        if "kite" in venues:
            updates.update(await self._start_kite(kite_ticks_per_second, keep_ledgers))
        if "binance" in venues:
            symbols = [s.upper() for s in binance_symbols] or list(
                settings.binance_symbols or SIM_BINANCE_SYMBOLS
            )
            updates.update(await self._start_binance(symbols, keep_ledgers))
        for venue, (_root, _ws, symbols_field) in _FUTURES_SETTINGS.items():
            if venue not in venues:
                continue
            chosen = (futures_symbols or {}).get(venue) or getattr(settings, symbols_field)
            chosen = [s.upper() for s in chosen] or list(SIM_FUTURES_SYMBOLS[venue])
            updates.update(await self._start_futures(venue, chosen, keep_ledgers))
        return settings.model_copy(update=updates)

    async def stop(self) -> None:
        await self._stack.aclose()

    async def _start_kite(self, rate: float, keep_ledger: bool) -> dict[str, object]:
        from shriven.sim.kite_rest import KiteSimulator, SimAccount
        from shriven.sim.kite_ticker import KiteTickerSimulator

        account = SimAccount()
        self.ticker = KiteTickerSimulator(
            api_key=account.api_key,
            seed=self.seed,
            ticks_per_second=rate,
            keep_ledger=keep_ledger,
        )
        self.kite = KiteSimulator(account=account, seed=self.seed, ticker=self.ticker)
        self.ticker.start_prices.update(start_prices(self.kite))
        pricing = surface_pricing(self.kite)
        self.ticker.pricing.update(pricing)
        self.kite.pricing.update(pricing)
        base = await self.kite.start()
        self._stack.push_async_callback(self.kite.stop)
        self._stack.push_async_callback(self.ticker.stop)
        ws = "ws" + base.removeprefix("http") + "/ws"
        log.info("kite simulator", url=base, ticker=ws)
        return {
            "kite_api_root": base,
            "kite_login_root": base,
            "kite_ws_url": ws,
            "zerodha_api_key": SecretStr(account.api_key),
            "zerodha_api_secret": SecretStr(account.api_secret),
            "zerodha_user_id": account.user_id,
            "zerodha_password": SecretStr(account.password),
            "zerodha_totp_secret": SecretStr(account.totp_secret),
        }

    async def _start_binance(self, symbols: list[str], keep_ledger: bool) -> dict[str, object]:
        from shriven.sim.binance import BinanceSimulator

        # What the simulator keeps for tests (every message sent, every diff for the true book)
        # grew `run --sim` by about 6 kB/s (tracemalloc), for hours before its caps of 100k
        # messages and 200k diffs per symbol: a recorder run needs neither.
        retention = {} if keep_ledger else {"ledger_size": 256, "max_history": 1_024}
        self.binance = BinanceSimulator(symbols=symbols, seed=self.seed, **retention)
        base = await self.binance.start()
        self._stack.push_async_callback(self.binance.stop)
        log.info("binance simulator", url=base, symbols=symbols)
        return {
            "binance_api_root": base,
            "binance_ws_url": self.binance.ws_url,
            "binance_symbols": symbols,
        }

    async def _start_futures(
        self, venue: str, symbols: list[str], keep_ledger: bool
    ) -> dict[str, object]:
        from shriven.sim.binance import BinanceSimulator

        retention = {} if keep_ledger else {"ledger_size": 256, "max_history": 1_024}
        sim = BinanceSimulator(symbols=symbols, seed=self.seed, venue=venue, **retention)
        self.futures[venue] = sim
        base = await sim.start()
        self._stack.push_async_callback(sim.stop)
        log.info(f"{venue} simulator", url=base, symbols=symbols)
        root, ws, symbols_field = _FUTURES_SETTINGS[venue]
        return {root: base, ws: sim.ws_url, symbols_field: symbols}


def start_prices(kite: KiteSimulator) -> dict[int, float]:
    """Where the ticker's random walks start: each index at the REST simulator's quote, its
    futures there too, and its options near intrinsic value, so spot moves around the listed
    strikes and the universe re-centres as it would on a real day."""
    from shriven.errors import ShrivenError
    from shriven.universe import InstrumentTable

    table = InstrumentTable(kite.instruments)
    by_underlying: dict[str, float] = {}
    for token, price in kite.prices.items():
        row = kite.by_token.get(token)
        if row is None:
            continue
        try:
            by_underlying[table.underlying_of(row)] = price
        except ShrivenError:
            continue
    out: dict[int, float] = dict(kite.prices)
    for i in kite.instruments:
        spot = by_underlying.get(i.name)
        if spot is None:
            continue
        if i.instrument_type == "FUT":
            out[i.instrument_token] = spot
        elif i.instrument_type in ("CE", "PE"):
            intrinsic = spot - i.strike if i.instrument_type == "CE" else i.strike - spot
            out[i.instrument_token] = max(intrinsic, 0.0) + 0.004 * spot
    return out


def surface_pricing(kite: KiteSimulator) -> dict[int, PricedInstrument]:
    """Every future and option whose underlying's spot is listed, priced by the ticker from that
    spot on one volatility surface (sim/surface.py), so a recorded chain is consistent."""
    from shriven.analytics.expiry import expiry_ns
    from shriven.errors import ShrivenError
    from shriven.sim.surface import PricedInstrument
    from shriven.universe import InstrumentTable

    table = InstrumentTable(kite.instruments)
    spot_of: dict[str, int] = {}
    for i in kite.instruments:
        if i.segment in ("INDICES", "NSE") and i.instrument_token in kite.prices:
            try:
                spot_of.setdefault(table.underlying_of(i), i.instrument_token)
            except ShrivenError:
                continue
    out: dict[int, PricedInstrument] = {}
    for i in kite.instruments:
        spot = spot_of.get(i.name)
        kind = i.instrument_type
        if spot is None or i.expiry is None or kind not in ("FUT", "CE", "PE"):
            continue
        out[i.instrument_token] = PricedInstrument(spot, kind, i.strike, expiry_ns(i.expiry))
    return out


async def start_simulators(
    stack: contextlib.AsyncExitStack, settings: Settings, options: RunOptions
) -> Settings:
    """Start the simulators the chosen venues need (stopped when ``stack`` closes)."""
    from shriven.app.startup import venues

    sims = Simulators()
    stack.push_async_callback(sims.stop)
    binance_symbols = options.symbols if options.venue == "binance" else ()
    futures = {options.venue: options.symbols} if options.venue in _FUTURES_SETTINGS else {}
    chosen = venues(options.venue)
    if options.venue == "all":  # a futures venue joins --sim all only when its symbols are set
        chosen = tuple(
            v
            for v in chosen
            if v not in _FUTURES_SETTINGS or getattr(settings, _FUTURES_SETTINGS[v][2])
        )
    return await sims.start(
        settings,
        chosen,
        binance_symbols=binance_symbols,
        futures_symbols=futures,
        kite_ticks_per_second=options.sim_rate or 2_000.0,
    )
