"""The Kite REST simulator speaks Kite's shapes: checked with the official client and against the
recorded responses in tests/fixtures/kite."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import aiohttp
import pyotp
import pytest
from aiohttp import web
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex

from shriven.feeds.kite.instruments import parse_instruments_csv
from shriven.sim.background import simulator_thread
from shriven.sim.kite_instruments import generate_instruments
from shriven.sim.kite_rest import KiteSimulator


@pytest.fixture()
def sim() -> Iterator[tuple[KiteSimulator, str]]:
    s = KiteSimulator(today=date(2026, 11, 27))
    with simulator_thread(s) as url:
        yield s, url


def login_session(s: KiteSimulator, url: str) -> dict:
    """Drive the web flow by hand with aiohttp-free requests, like a browser would."""
    import requests

    http = requests.Session()
    a = s.account
    rid = http.post(url + "/api/login", data={"user_id": a.user_id, "password": a.password})
    request_id = rid.json()["data"]["request_id"]
    code = pyotp.TOTP(a.totp_secret).now()
    twofa = http.post(
        url + "/api/twofa",
        data={"user_id": a.user_id, "request_id": request_id, "twofa_value": code,
              "twofa_type": "totp"},
    )  # fmt: skip
    assert twofa.json()["status"] == "success" and "enctoken" in http.cookies
    r = http.get(url + f"/connect/login?v=3&api_key={a.api_key}", allow_redirects=False)
    while "request_token" not in r.headers["Location"]:
        r = http.get(url + r.headers["Location"], allow_redirects=False)
    token = r.headers["Location"].split("request_token=")[1].split("&")[0]
    assert r.headers["Location"].startswith(a.redirect_url + "?")
    return KiteConnect(a.api_key, root=url).generate_session(token, a.api_secret)


def test_session_answer_has_the_real_fields(sim, kite_fixtures: Path) -> None:
    s, url = sim
    session = login_session(s, url)
    real = json.loads((kite_fixtures / "generate_session.json").read_text())["data"]
    assert set(session) == set(real)
    assert s.token_is_valid(s.account.api_key, session["access_token"])


def test_session_checksum_is_verified(sim) -> None:
    s, url = sim
    a = s.account
    kite = KiteConnect(a.api_key, root=url)
    with pytest.raises(kex.TokenException, match="invalid or has expired"):
        kite.generate_session("never-issued", a.api_secret)
    s._state.request_tokens.add("issued")
    with pytest.raises(kex.TokenException, match="checksum"):
        kite.generate_session("issued", "wrong-secret")
    good = hashlib.sha256((a.api_key + "issued" + a.api_secret).encode()).hexdigest()
    assert len(good) == 64  # what kiteconnect sends: sha256(api_key + request_token + secret)
    assert kite.generate_session("issued", a.api_secret)["access_token"]


def test_twofa_checks_a_real_totp(sim) -> None:
    import requests

    s, url = sim
    a = s.account
    rid = requests.post(url + "/api/login", data={"user_id": a.user_id, "password": a.password})
    request_id = rid.json()["data"]["request_id"]
    wrong = str((int(pyotp.TOTP(a.totp_secret).now()) + 1) % 1_000_000).zfill(6)
    bad = requests.post(
        url + "/api/twofa",
        data={"user_id": a.user_id, "request_id": request_id, "twofa_value": wrong,
              "twofa_type": "totp"},
    )  # fmt: skip
    assert bad.status_code == 403 and bad.json()["error_type"] == "TwoFAException"


def test_quote_and_ltp_need_the_token_header_and_match_real_shapes(
    sim, kite_fixtures: Path
) -> None:
    s, url = sim
    access_token = login_session(s, url)["access_token"]
    with pytest.raises(kex.TokenException):
        KiteConnect(s.account.api_key, root=url).ltp(["NSE:NIFTY 50"])
    kite = KiteConnect(s.account.api_key, access_token=access_token, root=url)
    quote = kite.quote(["NSE:NIFTY 50", "NSE:NOSUCH"])
    real_quote = json.loads((kite_fixtures / "quote.json").read_text())["data"]["NSE:INFY"]
    assert list(quote) == ["NSE:NIFTY 50"]
    assert set(quote["NSE:NIFTY 50"]) == set(real_quote)
    assert set(quote["NSE:NIFTY 50"]["depth"]) == {"buy", "sell"}
    ltp = kite.ltp(["NSE:NIFTY BANK", "260105"])
    real_ltp = json.loads((kite_fixtures / "ltp.json").read_text())["data"]["NSE:INFY"]
    assert set(ltp["NSE:NIFTY BANK"]) == set(real_ltp)
    assert ltp["260105"]["last_price"] == 52_000.0
    s.expire_tokens()
    with pytest.raises(kex.TokenException):
        kite.ltp(["NSE:NIFTY 50"])


def test_instrument_dump_parses_with_kiteconnect(sim, kite_fixtures: Path) -> None:
    s, url = sim
    rows = KiteConnect(s.account.api_key, root=url).instruments()
    assert len(rows) == len(s.instruments)
    nifty = next(r for r in rows if r["instrument_token"] == 256265)
    assert (nifty["tradingsymbol"], nifty["segment"], nifty["exchange"]) == (
        "NIFTY 50",
        "INDICES",
        "NSE",
    )
    futs = [r for r in rows if r["name"] == "NIFTY" and r["instrument_type"] == "FUT"]
    assert len(futs) == 3
    assert all(r["instrument_token"] & 0xFF == 2 for r in futs)  # NFO segment in the low byte


def test_generated_table_plus_fixture_rows(kite_fixtures: Path) -> None:
    real = parse_instruments_csv((kite_fixtures / "instruments_all.csv").read_text())
    s = KiteSimulator(today=date(2026, 11, 27), extra_instruments=real)
    assert s.instruments[-len(real) :] == real
    assert len(s.instruments) == len(generate_instruments(date(2026, 11, 27))) + len(real)
    assert generate_instruments(date(2026, 11, 27), seed=3) == generate_instruments(
        date(2026, 11, 27), seed=3
    )


class EchoTicker:
    """Stands in for sim/kite_ticker.py's handler: says hello and closes."""

    def __init__(self) -> None:
        self.api_key = "unset"
        self.access_tokens: set[str] = set()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("hello " + request.query.get("api_key", ""))
        await ws.close()
        return ws


async def test_ticker_handler_is_mounted_at_ws_and_shares_tokens() -> None:
    ticker = EchoTicker()
    s = KiteSimulator(today=date(2026, 11, 27), ticker=ticker)
    url = await s.start()
    try:
        assert ticker.api_key == s.account.api_key
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url.replace("http", "ws") + "/ws?api_key=k") as ws,
        ):
            msg = await ws.receive(timeout=10)
            assert msg.data == "hello k"
        s._state.request_tokens.add("rt")
        a = s.account
        checksum = hashlib.sha256((a.api_key + "rt" + a.api_secret).encode()).hexdigest()
        async with aiohttp.ClientSession() as http:
            resp = await http.post(
                url + "/session/token",
                data={"api_key": a.api_key, "request_token": "rt", "checksum": checksum},
            )
            token = (await resp.json())["data"]["access_token"]
        assert token in ticker.access_tokens
        s.expire_tokens()
        assert token not in ticker.access_tokens
    finally:
        await s.stop()
