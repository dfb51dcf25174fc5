"""What the serve tests share: a server on loopback, the KiteTicker subprocess, and the tick
dicts kiteconnect yields for a recorded tick (written from kiteconnect's documented fields, not
from our encoder)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shriven.events import KITE_SEGMENT_INDICES, KiteTick, kite_price_divisor
from shriven.replay import load_zone
from shriven.serve import ServeOptions, Server

KITE_CLIENT = Path(__file__).with_name("kite_client.py")
ZONE = load_zone("Asia/Kolkata")
_RANK = {"ltp": 0, "quote": 1, "full": 2}


@asynccontextmanager
async def serving(
    data_dir: Path | None, *, live: bool = False, key: str | None = None, **options: Any
) -> AsyncIterator[Server]:
    opts = ServeOptions(port=0, api_key=SecretStr(key) if key is not None else None, **options)
    server = Server(opts, data_dir, ZONE, live=live)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def run_kite_client(
    tmp: Path,
    root: str,
    modes: dict[int, str],
    seconds: float,
    *,
    access_token: str = "t",
    send: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Run kiteconnect's KiteTicker against ``root`` for at most ``seconds``; its events."""
    out = tmp / f"kite-client-{len(list(tmp.glob('kite-client-*')))}.jsonl"
    args = {
        "root": root,
        "api_key": "k",
        "access_token": access_token,
        "modes": {str(t): m for t, m in modes.items()},
        "seconds": seconds,
        "out": str(out),
        "send": send or [],
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(KITE_CLIENT), json.dumps(args),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), seconds + 30)
    except TimeoutError:
        proc.kill()
        raise
    assert proc.returncode == 0, err.decode()[-2000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


def ticks_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for e in events if "ticks" in e for t in e["ticks"]]


def served_mode(tick: KiteTick, asked: str) -> str:
    return asked if _RANK[asked] < _RANK[tick.mode] else tick.mode


def kiteconnect_view(r: KiteTick, asked: str) -> dict[str, Any]:
    """The dict kiteconnect's KiteTicker yields for ``r`` served in ``asked`` mode (datetimes as
    epoch seconds, as kite_client.py writes them)."""
    mode = served_mode(r, asked)
    div = float(kite_price_divisor(r.instrument_token))
    index = r.instrument_token & 0xFF == KITE_SEGMENT_INDICES
    d: dict[str, Any] = {
        "tradable": not index,
        "mode": mode,
        "instrument_token": r.instrument_token,
        "last_price": r.last_price / div,
    }
    if mode == "ltp":
        return d
    ohlc = {"open": r.open / div, "high": r.high / div, "low": r.low / div, "close": r.close / div}
    if not index:
        d["last_traded_quantity"] = r.last_traded_quantity
        d["average_traded_price"] = r.average_traded_price / div
        d["volume_traded"] = r.volume_traded
        d["total_buy_quantity"] = r.total_buy_quantity
        d["total_sell_quantity"] = r.total_sell_quantity
    d["ohlc"] = ohlc
    d["change"] = (d["last_price"] - ohlc["close"]) * 100 / ohlc["close"] if ohlc["close"] else 0
    if mode == "full":
        if not index:
            d["last_trade_time"] = r.last_trade_time
            d["oi"] = r.oi
            d["oi_day_high"] = r.oi_day_high
            d["oi_day_low"] = r.oi_day_low
        d["exchange_timestamp"] = r.exchange_timestamp
        if not index:
            d["depth"] = {
                side: [{"quantity": q, "price": p / div, "orders": o} for p, q, o in levels]
                for side, levels in (("buy", r.bids), ("sell", r.asks))
            }
    return d
