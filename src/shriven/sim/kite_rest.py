"""Loopback Kite simulator, REST half: web login, TOTP two-factor, the Kite Connect redirect,
session exchange, instrument dump, quote and LTP, with the real paths and JSON shapes.

One server plays both roots: point ``SHRIVEN_KITE_LOGIN_ROOT`` and ``SHRIVEN_KITE_API_ROOT`` at
the base URL :meth:`KiteSimulator.start` returns. A ticker handler (``sim/kite_ticker.py``) is
mounted at ``/ws`` when given; it can read :attr:`KiteSimulator.instruments` and
:meth:`KiteSimulator.token_is_valid`.

Fault switches (attributes, flip them any time): ``reject_password``, ``reject_totp``,
``truncate_dump``, ``app_not_authorised``, and :meth:`expire_tokens`.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol
from urllib.parse import urlencode

import pyotp
from aiohttp import web

from shriven.clock import IST
from shriven.feeds.kite.instruments import Instrument, to_csv
from shriven.sim.kite_instruments import generate_instruments
from shriven.sim.surface import DEFAULT_SURFACE, PricedInstrument, VolSurface

_TICK = 0.05  # rupees: the F&O tick, under which a derivative's quote is rounded, as in ticks


class TickerHandler(Protocol):
    """What ``sim/kite_ticker.py`` offers: an aiohttp websocket handler. If it also has
    ``api_key`` and an ``access_tokens`` set, they are kept in step with the REST side."""

    async def handle(self, request: web.Request) -> web.WebSocketResponse: ...


@dataclass(slots=True)
class LedgerEntry:
    method: str
    path: str
    status: int


@dataclass(slots=True)
class SimAccount:
    user_id: str = "AB1234"
    password: str = "correct horse"
    totp_secret: str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    api_key: str = "simapikey"
    api_secret: str = "simapisecret"
    redirect_url: str = "http://127.0.0.1:9/kite/redirect"  # never fetched by a correct client
    twofa_type: str = "totp"


@dataclass(slots=True)
class _State:
    request_ids: dict[str, str] = field(default_factory=dict)  # request_id -> user_id
    web_sessions: set[str] = field(default_factory=set)  # enctoken cookies
    request_tokens: set[str] = field(default_factory=set)
    access_tokens: set[str] = field(default_factory=set)


def _error(status: int, message: str, error_type: str) -> web.Response:
    return web.json_response(
        {"status": "error", "message": message, "data": None, "error_type": error_type},
        status=status,
    )


def _ok(data: object) -> web.Response:
    return web.json_response({"status": "success", "data": data})


class KiteSimulator:
    def __init__(
        self,
        *,
        account: SimAccount | None = None,
        instruments: Sequence[Instrument] | None = None,
        today: date | None = None,
        seed: int = 0,
        prices: dict[int, float] | None = None,
        extra_instruments: Sequence[Instrument] = (),
        ticker: TickerHandler | None = None,
    ) -> None:
        self.account = account or SimAccount()
        # The generated F&O table plus any given rows (tests add the recorded fixture rows).
        self.instruments: list[Instrument] = [
            *(
                instruments
                if instruments is not None
                else generate_instruments(today or datetime.now(UTC).date(), seed=seed)
            ),
            *extra_instruments,
        ]
        self.by_token = {i.instrument_token: i for i in self.instruments}
        self.by_key = {f"{i.exchange}:{i.tradingsymbol}": i for i in self.instruments}
        self.prices: dict[int, float] = {256265: 25_000.0, 260105: 52_000.0, **(prices or {})}
        # Futures and options without a price of their own are quoted from their spot's price
        # on ``surface``, as the ticker streams them (app/simulators.py fills both tables).
        self.pricing: dict[int, PricedInstrument] = {}
        self.surface: VolSurface = DEFAULT_SURFACE
        self.ticker = ticker
        if ticker is not None and hasattr(ticker, "api_key"):
            ticker.api_key = self.account.api_key  # one app key for REST and websocket
        self.ledger: list[LedgerEntry] = []
        self.reject_password = False
        self.reject_totp = False
        self.truncate_dump = False
        self.app_not_authorised = False
        self._rng = secrets.SystemRandom()
        self._state = _State()
        self._runner: web.AppRunner | None = None
        self._dump: tuple[int, bytes] | None = None  # (rows, CSV body), built on first request
        self.base_url = ""

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        app = web.Application(middlewares=[self._record])
        r = app.router
        r.add_post("/api/login", self._login)
        r.add_post("/api/twofa", self._twofa)
        r.add_get("/connect/login", self._connect_login)
        r.add_get("/connect/finish", self._connect_finish)
        r.add_get("/connect/authorize", self._connect_authorize)
        r.add_post("/session/token", self._session_token)
        r.add_get("/instruments", self._instruments)
        r.add_get("/quote", self._quote)
        r.add_get("/quote/ltp", self._ltp)
        if self.ticker is not None:
            r.add_get("/ws", self.ticker.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> KiteSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ controls

    def expire_tokens(self) -> None:
        """Every access token issued so far becomes invalid (as at 06:00 IST)."""
        shared = self._ticker_tokens()
        if shared is not None:
            shared.difference_update(self._state.access_tokens)
        self._state.access_tokens.clear()

    def _ticker_tokens(self) -> set[str] | None:
        """The ticker simulator's accepted-token set, which we keep in step with ours."""
        tokens = getattr(self.ticker, "access_tokens", None)
        return tokens if isinstance(tokens, set) else None

    def token_is_valid(self, api_key: str, access_token: str) -> bool:
        return api_key == self.account.api_key and access_token in self._state.access_tokens

    def count(self, path: str) -> int:
        return sum(1 for e in self.ledger if e.path == path)

    @web.middleware
    async def _record(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        try:
            resp = await handler(request)
        except web.HTTPException as exc:  # redirects and refusals are raised
            self.ledger.append(LedgerEntry(request.method, request.path, exc.status))
            raise
        self.ledger.append(LedgerEntry(request.method, request.path, resp.status))
        return resp

    def _new_token(self) -> str:
        return "".join(self._rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(32))

    # ------------------------------------------------------------ web login

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        acct = self.account
        if (
            self.reject_password
            or form.get("user_id") != acct.user_id
            or form.get("password") != acct.password
        ):
            return _error(403, "Invalid `user_id` or `password`.", "InputException")
        request_id = self._new_token()
        self._state.request_ids[request_id] = acct.user_id
        return _ok(
            {
                "user_id": acct.user_id,
                "request_id": request_id,
                "twofa_type": acct.twofa_type,
                "twofa_types": [acct.twofa_type],
                "twofa_status": "active",
                "profile": {"user_name": "Sim User", "user_shortname": "Sim"},
            }
        )

    async def _twofa(self, request: web.Request) -> web.Response:
        form = await request.post()
        request_id = str(form.get("request_id", ""))
        if self._state.request_ids.get(request_id) != form.get("user_id"):
            return _error(403, "Invalid request. Please login again.", "TokenException")
        code = str(form.get("twofa_value", ""))
        valid = pyotp.TOTP(self.account.totp_secret).verify(code, valid_window=1)
        if self.reject_totp or not valid or form.get("twofa_type") != "totp":
            return _error(403, "Invalid TOTP", "TwoFAException")
        del self._state.request_ids[request_id]
        enctoken = self._new_token()
        self._state.web_sessions.add(enctoken)
        resp = _ok({"profile": {}})
        resp.set_cookie("enctoken", enctoken, httponly=True)
        return resp

    async def _connect_login(self, request: web.Request) -> web.StreamResponse:
        api_key = request.query.get("api_key", "")
        if api_key != self.account.api_key:
            return web.Response(status=400, text="Invalid `api_key`.", content_type="text/html")
        if "sess_id" not in request.query:
            sess_id = self._new_token()
            raise web.HTTPFound(
                "/connect/login?" + urlencode({"api_key": api_key, "sess_id": sess_id})
            )
        if request.cookies.get("enctoken") not in self._state.web_sessions:
            # Not logged in: Kite shows its login page here.
            return web.Response(text="<html>Kite login</html>", content_type="text/html")
        raise web.HTTPFound(
            "/connect/finish?"
            + urlencode({"api_key": api_key, "sess_id": request.query["sess_id"]})
        )

    async def _connect_finish(self, request: web.Request) -> web.StreamResponse:
        if request.cookies.get("enctoken") not in self._state.web_sessions:
            return web.Response(status=403, text="session expired", content_type="text/html")
        if self.app_not_authorised:
            raise web.HTTPFound("/connect/authorize?" + urlencode(request.query))
        request_token = self._new_token()
        self._state.request_tokens.add(request_token)
        query = {
            "action": "login",
            "type": "login",
            "status": "success",
            "request_token": request_token,
        }
        raise web.HTTPFound(self.account.redirect_url + "?" + urlencode(query))

    async def _connect_authorize(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>Authorize app</html>", content_type="text/html")

    # ------------------------------------------------------------ Kite Connect API

    async def _session_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        api_key = str(form.get("api_key", ""))
        request_token = str(form.get("request_token", ""))
        if api_key != self.account.api_key:
            return _error(403, "Invalid `api_key`.", "InputException")
        if request_token not in self._state.request_tokens:
            return _error(403, "Token is invalid or has expired.", "TokenException")
        expected = hashlib.sha256(
            (api_key + request_token + self.account.api_secret).encode()
        ).hexdigest()
        if form.get("checksum") != expected:
            return _error(403, "Invalid `checksum`.", "TokenException")
        self._state.request_tokens.discard(request_token)
        access_token = self._new_token()
        self._state.access_tokens.add(access_token)
        shared = self._ticker_tokens()
        if shared is not None:
            shared.add(access_token)
        now_ist = datetime.now(UTC).astimezone(IST)
        return _ok(
            {
                "user_type": "individual",
                "email": "sim@example.invalid",
                "user_name": "Sim User",
                "user_shortname": "Sim",
                "broker": "ZERODHA",
                "exchanges": ["NSE", "NFO", "BFO", "CDS", "BSE", "MCX", "BCD", "MF"],
                "products": ["CNC", "NRML", "MIS", "BO", "CO"],
                "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
                "avatar_url": "",
                "user_id": self.account.user_id,
                "api_key": api_key,
                "access_token": access_token,
                "public_token": self._new_token(),
                "enctoken": self._new_token(),
                "refresh_token": "",
                "silo": "",
                "login_time": now_ist.strftime("%Y-%m-%d %H:%M:%S"),
                "meta": {"demat_consent": "physical"},
            }
        )

    async def _instruments(self, request: web.Request) -> web.Response:
        if self._dump is None or self._dump[0] != len(self.instruments):
            self._dump = (len(self.instruments), to_csv(self.instruments).encode())
        body = self._dump[1]
        if self.truncate_dump:
            cut = body[: len(body) * 2 // 3]
            body = cut[: cut.rindex(b",") + 1]  # stop in the middle of a row
        return web.Response(body=body, content_type="text/csv")

    def _authorised(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        scheme, _, cred = auth.partition(" ")
        api_key, _, token = cred.partition(":")
        if scheme != "token" or not self.token_is_valid(api_key, token):
            return _error(403, "Incorrect `api_key` or `access_token`.", "TokenException")
        return None

    def _lookup(self, keys: Sequence[str]) -> dict[str, Instrument]:
        out = {}
        for k in keys:
            ins = self.by_key.get(k)
            if ins is None and k.isdigit():
                ins = self.by_token.get(int(k))
            if ins is not None:
                out[k] = ins
        return out

    async def _ltp(self, request: web.Request) -> web.Response:
        denied = self._authorised(request)
        if denied is not None:
            return denied
        found = self._lookup(request.query.getall("i", []))
        return _ok(
            {
                k: {"instrument_token": i.instrument_token, "last_price": self._price(i)}
                for k, i in found.items()
            }
        )

    async def _quote(self, request: web.Request) -> web.Response:
        denied = self._authorised(request)
        if denied is not None:
            return denied
        found = self._lookup(request.query.getall("i", []))
        now = datetime.now(UTC).astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")
        return _ok({k: self._quote_row(i, now) for k, i in found.items()})

    def _price(self, ins: Instrument) -> float:
        token = ins.instrument_token
        priced = self.pricing.get(token)
        if token in self.prices or priced is None or priced.spot_token not in self.prices:
            return self.prices.get(token, 100.0)
        rupees = self.surface.price(self.prices[priced.spot_token], priced, time.time_ns())
        return round(max(_TICK, math.floor(rupees / _TICK) * _TICK), 2)

    def _quote_row(self, ins: Instrument, now: str) -> dict[str, object]:
        p = self._price(ins)
        empty = [{"price": 0, "quantity": 0, "orders": 0}] * 5
        return {
            "instrument_token": ins.instrument_token,
            "timestamp": now,
            "last_trade_time": now,
            "last_price": p,
            "last_quantity": 0,
            "buy_quantity": 0,
            "sell_quantity": 0,
            "volume": 0,
            "average_price": 0,
            "oi": 0,
            "oi_day_high": 0,
            "oi_day_low": 0,
            "net_change": 0,
            "lower_circuit_limit": 0,
            "upper_circuit_limit": 0,
            "ohlc": {"open": p, "high": p, "low": p, "close": p},
            "depth": {"buy": empty, "sell": empty},
        }
