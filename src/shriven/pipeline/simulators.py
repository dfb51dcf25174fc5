"""``shriven run --sim``: the built-in Kite and Binance simulators on loopback, and settings that
point the real adapters at them with the simulators' own (fake) credentials.

The simulated run keeps its token and instruments cache under ``<cache_dir>/sim`` and (unless
``--data-dir`` is given) records into ``<data_dir>/../sim``, so it never touches real data.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from pydantic import SecretStr

from shriven.config import Settings
from shriven.logging import get_logger

if TYPE_CHECKING:
    from shriven.pipeline.startup import RunOptions

log = get_logger("shriven.pipeline.sim")

SIM_SEED = 7


async def start_simulators(
    stack: contextlib.AsyncExitStack, settings: Settings, options: RunOptions
) -> Settings:
    """Start the simulators the chosen venues need (stopped when ``stack`` closes)."""
    from shriven.pipeline.startup import venues

    wanted = venues(options.venue)
    updates: dict[str, object] = {"cache_dir": settings.cache_dir / "sim"}
    if "kite" in wanted:
        updates.update(await _start_kite(stack, options))
    if "binance" in wanted:
        updates.update(await _start_binance(stack, settings, options))
    return settings.model_copy(update=updates)


async def _start_kite(stack: contextlib.AsyncExitStack, options: RunOptions) -> dict[str, object]:
    from shriven.sim.kite import KiteSimulator, SimAccount
    from shriven.sim.kite_ticker import KiteTickerSimulator

    account = SimAccount()
    ticker = KiteTickerSimulator(
        api_key=account.api_key,
        seed=SIM_SEED,
        ticks_per_second=options.sim_rate or 2_000.0,
        keep_ledger=False,
    )
    rest = KiteSimulator(account=account, seed=SIM_SEED, ticker=ticker)
    base = await rest.start()
    stack.push_async_callback(rest.stop)
    stack.push_async_callback(ticker.stop)
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


async def _start_binance(
    stack: contextlib.AsyncExitStack, settings: Settings, options: RunOptions
) -> dict[str, object]:
    from shriven.sim.binance import BinanceSimulator

    symbols = (
        [s.upper() for s in options.symbols]
        if options.symbols and options.venue == "binance"
        else list(settings.binance_symbols or ("BTCUSDT", "ETHUSDT"))
    )
    sim = BinanceSimulator(symbols=symbols, seed=SIM_SEED)
    base = await sim.start()
    stack.push_async_callback(sim.stop)
    ws = sim.ws_url
    log.info("binance simulator", url=base, ws=ws, symbols=symbols)
    return {"binance_api_root": base, "binance_ws_url": ws, "binance_symbols": symbols}
