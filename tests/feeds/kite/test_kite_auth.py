"""The automatic Kite login against the loopback simulator: the full flow, the 0600 token cache,
reuse until 06:00 IST, re-login on a refused token, and every failure's message."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import structlog
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex

from shriven.config import load_settings
from shriven.errors import CredentialsError, LoginError, ShrivenError
from shriven.feeds.kite.auth import (
    KiteAuth,
    KiteCredentials,
    KiteSession,
    has_credentials,
    token_cache_path,
    token_expiry,
)
from shriven.logging import configure_logging, get_logger
from shriven.sim.background import simulator_thread
from shriven.sim.kite_rest import KiteSimulator

IST = ZoneInfo("Asia/Kolkata")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    # configure_logging binds the current stderr, which pytest closes after each test.
    yield
    structlog.reset_defaults()


@pytest.fixture()
def sim() -> Iterator[tuple[KiteSimulator, str]]:
    s = KiteSimulator(seed=1)
    with simulator_thread(s) as url:
        yield s, url


def creds_for(sim: KiteSimulator, **changes: str) -> KiteCredentials:
    a = sim.account
    base = KiteCredentials(
        user_id=a.user_id,
        api_key=a.api_key,
        api_secret=a.api_secret,
        password=a.password,
        totp_secret=a.totp_secret,
    )
    return replace(base, **changes)


def make_auth(
    sim: KiteSimulator, url: str, tmp_path: Path, clock: Clock | None = None, **changes: str
) -> KiteAuth:
    return KiteAuth(
        creds_for(sim, **changes), login_root=url, api_root=url, cache_dir=tmp_path, clock=clock
    )


def test_login_end_to_end_gives_a_working_token(sim, tmp_path: Path) -> None:
    s, url = sim
    auth = make_auth(s, url, tmp_path)
    session = auth.session()
    assert s.token_is_valid(s.account.api_key, session.access_token)
    kite = KiteConnect(s.account.api_key, access_token=session.access_token, root=url)
    assert kite.ltp(["NSE:NIFTY 50"])["NSE:NIFTY 50"]["instrument_token"] == 256265
    assert [(e.method, e.path) for e in s.ledger] == [
        ("POST", "/api/login"),
        ("POST", "/api/twofa"),
        ("GET", "/connect/login"),
        ("GET", "/connect/login"),
        ("GET", "/connect/finish"),
        ("POST", "/session/token"),
        ("GET", "/quote/ltp"),
    ]  # the app's redirect URL (which carries the request_token) is never fetched


def test_token_cache_is_private_and_atomic(sim, tmp_path: Path) -> None:
    s, url = sim
    auth = make_auth(s, url, tmp_path)
    session = auth.session()
    path = token_cache_path(tmp_path, "AB1234")
    assert auth.cache_path == path == tmp_path / "zerodha" / "zerodha_token_AB1234.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    doc = json.loads(path.read_text())
    assert doc["access_token"] == session.access_token
    assert datetime.fromisoformat(doc["login_time"]) == session.login_time
    assert datetime.fromisoformat(doc["expires_at"]) == token_expiry(session.login_time)


def test_cached_token_is_reused_until_0600_ist(sim, tmp_path: Path) -> None:
    s, url = sim
    clock = Clock(datetime(2026, 11, 27, 9, 0, tzinfo=IST))
    first = make_auth(s, url, tmp_path, clock).session()
    assert first.expires_at == datetime(2026, 11, 28, 6, 0, tzinfo=IST)
    for later in (timedelta(hours=1), timedelta(hours=20, minutes=59)):
        clock.now = datetime(2026, 11, 27, 9, 0, tzinfo=IST) + later
        again = make_auth(s, url, tmp_path, clock)  # a new process reading the cache
        assert again.session().access_token == first.access_token
        assert again.logins == 0
    assert s.count("/api/login") == 1
    clock.now = datetime(2026, 11, 28, 6, 0, tzinfo=IST)
    renewed = make_auth(s, url, tmp_path, clock)
    assert renewed.session().access_token != first.access_token
    assert renewed.logins == 1 and s.count("/api/login") == 2


def test_token_expiry_is_the_next_0600_ist() -> None:
    at = datetime(2026, 11, 27, 5, 59, tzinfo=IST)
    assert token_expiry(at) == datetime(2026, 11, 27, 6, 0, tzinfo=IST)
    at = datetime(2026, 11, 27, 6, 0, tzinfo=IST)
    assert token_expiry(at) == datetime(2026, 11, 28, 6, 0, tzinfo=IST)


def test_refused_token_triggers_one_fresh_login(sim, tmp_path: Path) -> None:
    s, url = sim
    auth = make_auth(s, url, tmp_path)
    old = auth.session().access_token
    s.expire_tokens()
    ltp = auth.call(lambda kite: kite.ltp(["NSE:NIFTY BANK"]))
    assert ltp["NSE:NIFTY BANK"]["last_price"] == 52_000.0
    assert auth.logins == 2 and auth.session().access_token != old
    assert json.loads(auth.cache_path.read_text())["access_token"] != old


def test_async_provider_refreshes_once_for_refusals_arriving_together(sim, tmp_path: Path) -> None:
    s, url = sim
    clock = Clock(datetime(2026, 11, 27, 9, 0, tzinfo=IST))
    auth = make_auth(s, url, tmp_path, clock)

    async def tokens(*refresh: bool) -> list[str]:
        return [await auth.access_token(refresh=r) for r in refresh]

    a, b, c = asyncio.run(tokens(False, True, True))
    assert a != b == c and auth.logins == 2  # the second refusal shares the first's login
    clock.now += timedelta(minutes=5)
    (d,) = asyncio.run(tokens(True))
    assert d != c and auth.logins == 3


def test_concurrent_callers_share_one_login(sim, tmp_path: Path) -> None:
    s, url = sim
    auth = make_auth(s, url, tmp_path)

    async def many() -> set[str]:
        return set(await asyncio.gather(*(auth.access_token() for _ in range(3))))

    assert len(asyncio.run(many())) == 1
    assert auth.logins == 1 and s.count("/api/login") == 1


def test_cache_for_another_api_key_or_corrupt_is_not_used(sim, tmp_path: Path) -> None:
    s, url = sim
    auth = make_auth(s, url, tmp_path)
    session = auth.session()
    auth.cache_path.write_bytes(replace(session, api_key="otherkey").to_json())
    assert make_auth(s, url, tmp_path).session().api_key == s.account.api_key
    auth.cache_path.write_text("{not json")
    fresh = make_auth(s, url, tmp_path)
    assert fresh.session() and fresh.logins == 1
    assert KiteSession.from_json(auth.cache_path.read_bytes()).api_key == s.account.api_key


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("fault", "changes", "match"),
    [
        ("reject_password", {}, "ZERODHA_USER_ID and ZERODHA_PASSWORD"),
        (None, {"password": "wrong-password"}, "ZERODHA_USER_ID and ZERODHA_PASSWORD"),
        ("reject_totp", {}, "ZERODHA_TOTP_SECRET.*clock"),
        (None, {"totp_secret": "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"}, "ZERODHA_TOTP_SECRET.*clock"),
        (None, {"totp_secret": "not base32!"}, "not a valid TOTP secret"),
        (None, {"api_key": "unknownkey"}, "does not know ZERODHA_API_KEY"),
        (None, {"api_secret": "wrongsecret"}, "ZERODHA_API_SECRET does not belong"),
        ("app_not_authorised", {}, "not be enabled or not yet authorised"),
    ],
)
def test_each_failure_names_cause_and_fix_without_secrets(
    sim, tmp_path: Path, capsys, fault: str | None, changes: dict[str, str], match: str
) -> None:
    s, url = sim
    configure_logging("debug")
    if fault:
        setattr(s, fault, True)
    auth = make_auth(s, url, tmp_path, **changes)
    with pytest.raises(LoginError, match=match) as err:
        auth.session()
    shown = str(err.value) + capsys.readouterr().err
    for secret in (*auth.creds.secrets(), s.account.password, s.account.totp_secret):
        assert secret not in shown
    assert not auth.cache_path.exists()


def test_unreachable_login_server_is_a_one_line_venue_error(tmp_path: Path) -> None:
    sim = KiteSimulator(seed=1)
    auth = make_auth(sim, "http://127.0.0.1:9", tmp_path)
    with pytest.raises(ShrivenError, match="SHRIVEN_KITE_LOGIN_ROOT"):
        auth.session()


def test_successful_login_logs_no_secret_or_token(sim, tmp_path: Path, capsys) -> None:
    s, url = sim
    configure_logging("debug")
    auth = make_auth(s, url, tmp_path)
    token = auth.session().access_token
    s.expire_tokens()
    auth.call(lambda kite: kite.ltp(["NSE:NIFTY 50"]))
    logged = capsys.readouterr().err
    assert "kite login ok" in logged
    for secret in (*auth.creds.secrets(), token, auth.session().access_token):
        assert secret not in logged
    assert token not in repr(auth.session()) and s.account.password not in repr(auth.creds)


def test_missing_credentials_are_named(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("API_KEY", "API_SECRET", "USER_ID", "PASSWORD", "TOTP_SECRET"):
        monkeypatch.delenv(f"ZERODHA_{name}", raising=False)
    monkeypatch.setenv("ZERODHA_API_KEY", "k")
    monkeypatch.setenv("ZERODHA_USER_ID", "AB1234")
    monkeypatch.setenv("SHRIVEN_CONFIG_FILE", os.devnull)
    settings = load_settings()
    assert not has_credentials(settings)
    with pytest.raises(CredentialsError) as err:
        KiteAuth.from_settings(settings)
    msg = str(err.value)
    for missing in ("ZERODHA_API_SECRET", "ZERODHA_PASSWORD", "ZERODHA_TOTP_SECRET"):
        assert missing in msg
    assert "ZERODHA_API_KEY" not in msg and "ZERODHA_USER_ID" not in msg


def test_kiteconnect_sees_a_refused_token_as_token_exception(sim) -> None:
    s, url = sim
    kite = KiteConnect(s.account.api_key, access_token="stale", root=url)
    with pytest.raises(kex.TokenException):
        kite.quote(["NSE:NIFTY 50"])


def test_token_refused_even_after_a_fresh_login_is_a_one_line_error(sim, tmp_path: Path) -> None:
    s, url = sim
    auth = make_auth(s, url, tmp_path)

    def always_refused(kite: KiteConnect) -> None:
        raise kex.TokenException("Incorrect `api_key` or `access_token`.")

    with pytest.raises(LoginError, match="freshly issued access token"):
        auth.call(always_refused)
    assert auth.logins == 2

    def kite_down(kite: KiteConnect) -> None:
        raise kex.NetworkException("Gateway down", code=503)

    with pytest.raises(ShrivenError, match="NetworkException"):
        auth.call(kite_down)


@pytest.mark.parametrize("json_logs", [False, True], ids=["console", "json"])
def test_a_traceback_on_the_login_path_shows_no_secret_or_token(
    sim, tmp_path: Path, capsys, json_logs: bool
) -> None:
    """Tracebacks are logged without the frames' locals (rich, installed with typer, prints them
    all by default) and scrubbed like log fields."""
    s, url = sim
    configure_logging("info", json=json_logs)
    log = get_logger("test")
    bad_totp = "NOTBASE32SECRET!"
    with pytest.raises(LoginError):  # raised inside the TOTP step, whose locals hold the secret
        try:
            make_auth(s, url, tmp_path, totp_secret=bad_totp).session()
        except LoginError:
            log.exception("kite login failed")
            raise
    auth = make_auth(s, url, tmp_path)
    auth.cache_path.mkdir(parents=True)  # the token cache cannot be written: a directory there
    with pytest.raises(OSError):  # raised after the session exchange, the token in its frames
        try:
            auth.session()
        except OSError:
            log.exception("kite login failed", note="access_token=leaked-in-a-message")
            raise
    err = capsys.readouterr().err
    assert err.count("Traceback (most recent call last)") == 2, err[-3000:]
    assert "IsADirectoryError" in err and "not a valid TOTP secret" in err
    (token,) = s._state.access_tokens
    for secret in (token, s.account.password, bad_totp, s.account.api_secret, "leaked-in"):
        assert secret not in err, secret


@pytest.mark.parametrize("fault", ["reject_password", "reject_totp"])
def test_a_refused_login_is_not_posted_again_until_the_backoff_or_a_change(
    sim, tmp_path: Path, fault: str
) -> None:
    """A supervisor restarting us (each start a new KiteAuth) must not lock the account."""
    s, url = sim
    setattr(s, fault, True)
    clock = Clock(datetime(2026, 3, 2, 9, 0, tzinfo=IST))
    first = make_auth(s, url, tmp_path, clock)
    with pytest.raises(LoginError, match=r"not be tried again before 2026-03-02 09:15:00 IST"):
        first.session()
    assert s.count("/api/login") == 1
    record = first.refusal_path
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    kept = record.read_text()
    for secret in (*first.creds.secrets(), s.account.password, s.account.totp_secret):
        assert secret not in kept
    clock.now += timedelta(minutes=14)
    with pytest.raises(LoginError, match=r"not posting the same credentials again before 2026-"):
        make_auth(s, url, tmp_path, clock).session()  # the next start
    assert s.count("/api/login") == 1  # nothing was posted
    changed = {"password": "new password"} if fault == "reject_password" else {}
    changed = changed or {"totp_secret": "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"}
    with pytest.raises(LoginError, match="will not be tried again"):
        make_auth(s, url, tmp_path, clock, **changed).session()  # changed: tried at once
    assert s.count("/api/login") == 2
    forced = make_auth(s, url, tmp_path, clock, **changed)
    forced.force_login = True
    with pytest.raises(LoginError, match="will not be tried again"):
        forced.session()
    assert s.count("/api/login") == 3
    setattr(s, fault, False)
    clock.now += timedelta(minutes=16)  # the backoff of the last refusal is over
    assert make_auth(s, url, tmp_path, clock).session().access_token
    assert not record.exists()  # a login that works forgets the refusal
