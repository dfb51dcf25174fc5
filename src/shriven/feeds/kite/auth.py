"""Automatic daily Kite login and the access-token cache.

The login itself (password, TOTP, Kite Connect redirect, session exchange) is in
:mod:`shriven.feeds.kite.login`.

The token is cached at ``{cache_dir}/zerodha/zerodha_token_<user_id>.json`` (mode 0600, written
atomically) and reused until it expires, about 06:00 IST the next morning. When the API answers
that a token is invalid (kiteconnect's ``TokenException``) we log in again once.

When Zerodha rejects the password or the TOTP code, the refusal is remembered in
``{cache_dir}/zerodha/zerodha_login_refused_<user_id>.json`` (mode 0600: when, why, and a salted
slow hash of the credentials, never the credentials) and the same credentials are not posted
again for ``retry_after`` (SHRIVEN_KITE_LOGIN_RETRY_SECS): a supervisor restarting us every few
seconds would otherwise lock the account. Changed credentials or ``force_login`` try at once.

Secrets and tokens never reach logs or exception messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import TypeVar

import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex

from shriven.clock import IST
from shriven.config import Settings
from shriven.errors import CredentialsError, LoginError, LoginRefusedError, VenueError
from shriven.feeds.kite.login import (
    CREDENTIAL_FIELDS,
    KiteCredentials,
    exchange_request_token,
    web_login,
)
from shriven.files import atomic_write
from shriven.logging import get_logger

__all__ = [
    "KiteAuth",
    "KiteCredentials",
    "KiteSession",
    "has_credentials",
    "require_credentials",
    "token_cache_path",
    "token_expiry",
]

log = get_logger(__name__)

TOKEN_EXPIRES_AT_IST = dtime(6, 0)
# Refreshes asked for within this long of the previous one share its login (KiteAuth.refresh).
REFRESH_GRACE = timedelta(seconds=30)
T = TypeVar("T")
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class KiteSession:
    user_id: str
    api_key: str = field(repr=False)
    access_token: str = field(repr=False)
    login_time: datetime  # when we logged in, aware UTC
    expires_at: datetime  # aware UTC

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value Kite's REST API and instrument dump take."""
        return f"token {self.api_key}:{self.access_token}"

    def is_valid(self, now: datetime) -> bool:
        return now < self.expires_at

    def to_json(self) -> bytes:
        doc = {
            "user_id": self.user_id,
            "api_key": self.api_key,
            "access_token": self.access_token,
            "login_time": self.login_time.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }
        return json.dumps(doc, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> KiteSession:
        doc = json.loads(raw)
        return cls(
            user_id=str(doc["user_id"]),
            api_key=str(doc["api_key"]),
            access_token=str(doc["access_token"]),
            login_time=_aware(datetime.fromisoformat(doc["login_time"])),
            expires_at=_aware(datetime.fromisoformat(doc["expires_at"])),
        )


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def token_expiry(login_time: datetime) -> datetime:
    """The first 06:00 IST after ``login_time``: when Kite retires the day's tokens."""
    local = login_time.astimezone(IST)
    expiry = datetime.combine(local.date(), TOKEN_EXPIRES_AT_IST, tzinfo=IST)
    if local >= expiry:
        expiry += timedelta(days=1)
    return expiry.astimezone(UTC)


def _user_file(cache_dir: Path, kind: str, user_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", user_id)
    return Path(cache_dir) / "zerodha" / f"zerodha_{kind}_{safe}.json"


def token_cache_path(cache_dir: Path, user_id: str) -> Path:
    return _user_file(cache_dir, "token", user_id)


def refusal_path(cache_dir: Path, user_id: str) -> Path:
    """Where a refused login is remembered (see the module docstring)."""
    return _user_file(cache_dir, "login_refused", user_id)


def _ist(t: datetime) -> str:
    return t.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S IST")


# ---------------------------------------------------------------- token manager


class KiteAuth:
    """Hands out a valid access token: cached when possible, else a fresh login."""

    def __init__(
        self,
        creds: KiteCredentials,
        *,
        login_root: str,
        api_root: str,
        cache_dir: Path,
        clock: Clock | None = None,
        timeout: float = 15.0,
        retry_after: timedelta = timedelta(minutes=15),
        force_login: bool = False,
    ) -> None:
        self.creds = creds
        self.login_root = login_root
        self.api_root = api_root
        self.cache_path = token_cache_path(cache_dir, creds.user_id)
        self.refusal_path = refusal_path(cache_dir, creds.user_id)
        self.retry_after = retry_after
        self.force_login = force_login
        self._clock = clock or (lambda: datetime.now(UTC))
        self._timeout = timeout
        self._session: KiteSession | None = None
        self._lock = threading.RLock()
        self._refreshed_at: datetime | None = None
        self.logins = 0

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> KiteAuth:
        return cls(
            KiteCredentials.from_settings(settings),
            login_root=settings.kite_login_root,
            api_root=settings.kite_api_root,
            cache_dir=settings.cache_dir,
            clock=clock,
            retry_after=timedelta(seconds=settings.kite_login_retry_secs),
            force_login=settings.kite_force_login,
        )

    def session(self, *, force: bool = False) -> KiteSession:
        """A session valid now; logs in (and caches the token) only when needed."""
        with self._lock:  # one login at a time; the others then find its token
            if not force:
                cached = self._cached_locked()
                if cached is not None:
                    return cached
            self._session = self._login(self._clock())
            return self._session

    def cached_session(self) -> KiteSession | None:
        """The cached session if it is still valid; never logs in."""
        with self._lock:
            return self._cached_locked()

    def _cached_locked(self) -> KiteSession | None:
        now = self._clock()
        for candidate in (self._session, self._read_cache()):
            if candidate is not None and self._usable(candidate, now):
                self._session = candidate
                return candidate
        return None

    def invalidate(self) -> None:
        """Forget the token (the venue said it is invalid); the next session() logs in."""
        with self._lock:
            self._session = None
            self.cache_path.unlink(missing_ok=True)

    def refresh(self) -> KiteSession:
        """A new login because a token was refused. Refusals arriving together (several ticker
        connections) share one login: within REFRESH_GRACE of a refresh, its session is reused."""
        with self._lock:
            now = self._clock()
            recent = self._refreshed_at is not None and now - self._refreshed_at < REFRESH_GRACE
            if recent and self._session is not None:
                return self._session
            self.invalidate()
            self._session = self._login(now)
            self._refreshed_at = now
            return self._session

    def kite(self) -> KiteConnect:
        """A kiteconnect client for ``api_root`` with a valid access token."""
        s = self.session()
        return KiteConnect(
            self.creds.api_key, access_token=s.access_token, root=self.api_root.rstrip("/")
        )

    def call(self, fn: Callable[[KiteConnect], T]) -> T:
        """Run ``fn`` with a client; on TokenException log in again and retry once. Kite and
        network errors become one-line ShrivenErrors."""
        try:
            try:
                return fn(self.kite())
            except kex.TokenException:
                log.warning("kite token rejected, logging in again", user=self.creds.user_id)
                self.refresh()
            try:
                return fn(self.kite())
            except kex.TokenException:
                raise LoginError(
                    "Kite refused a freshly issued access token: check at developers.kite.trade "
                    "that the app is active and subscribed to market data"
                ) from None
        except kex.KiteException as exc:
            raise VenueError(
                f"Kite answered {type(exc).__name__} (HTTP {exc.code}): {str(exc)[:200]}"
            ) from None
        except requests.RequestException as exc:
            raise VenueError(
                f"cannot reach the Kite API at {self.api_root} ({type(exc).__name__}); check the "
                "network and SHRIVEN_KITE_API_ROOT"
            ) from None

    async def access_token(self, *, refresh: bool = False) -> str:
        """For async callers (the ticker): a valid token; ``refresh=True`` after a rejection."""
        s = await asyncio.to_thread(self.refresh if refresh else self.session)
        return s.access_token

    def _usable(self, s: KiteSession, now: datetime) -> bool:
        return (
            s.api_key == self.creds.api_key
            and s.user_id == self.creds.user_id
            and (s.is_valid(now))
        )

    def _read_cache(self) -> KiteSession | None:
        try:
            raw = self.cache_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning(
                "cannot read the kite token cache", path=str(self.cache_path), err=exc.strerror
            )
            return None
        try:
            return KiteSession.from_json(raw)
        except (ValueError, KeyError, TypeError):
            log.warning("kite token cache unreadable, logging in again", path=str(self.cache_path))
            return None

    def _check_refusal(self, now: datetime) -> None:
        """Raise LoginError if these very credentials were refused less than retry_after ago."""
        try:
            doc = json.loads(self.refusal_path.read_bytes())
            refused_at = _aware(datetime.fromisoformat(doc["refused_at"]))
            same = self.creds.fingerprint(bytes.fromhex(doc["salt"])) == doc["fingerprint"]
            reason = str(doc.get("reason", ""))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError):
            log.warning(
                "kite login refusal record unreadable, ignored", path=str(self.refusal_path)
            )
            return
        retry_at = refused_at + self.retry_after
        if not same or now >= retry_at or self.force_login:
            return
        raise LoginError(
            f"the last Kite login for user {self.creds.user_id} was refused at {_ist(refused_at)} "
            f"({reason}); not posting the same credentials again before {_ist(retry_at)} so the "
            "account is not locked: fix ZERODHA_PASSWORD or ZERODHA_TOTP_SECRET (a change is "
            "tried at once), or pass `shriven run --force-login` (SHRIVEN_KITE_FORCE_LOGIN=true)"
        )

    def _remember_refusal(self, now: datetime, exc: LoginRefusedError) -> str:
        """Write the refusal record; returns the line that says when we will try again."""
        salt = os.urandom(16)
        doc = {
            "user_id": self.creds.user_id,
            "refused_at": now.isoformat(),
            "reason": f"Zerodha rejected the {exc.what}",
            "salt": salt.hex(),
            "fingerprint": self.creds.fingerprint(salt),
        }
        self.refusal_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.refusal_path, json.dumps(doc, indent=2).encode() + b"\n", mode=0o600)
        return (
            f"; the same credentials will not be tried again before {_ist(now + self.retry_after)}"
            " (SHRIVEN_KITE_LOGIN_RETRY_SECS) unless they change or --force-login is given"
        )

    def _login(self, now: datetime) -> KiteSession:
        self._check_refusal(now)
        log.info("kite login", user=self.creds.user_id, login_root=self.login_root)
        try:
            request_token = web_login(self.creds, self.login_root, timeout=self._timeout)
        except LoginRefusedError as exc:
            raise LoginRefusedError(str(exc) + self._remember_refusal(now, exc), exc.what) from None
        self.refusal_path.unlink(missing_ok=True)
        access_token = exchange_request_token(
            self.creds, request_token, self.api_root, timeout=self._timeout
        )
        session = KiteSession(
            user_id=self.creds.user_id,
            api_key=self.creds.api_key,
            access_token=access_token,
            login_time=now,
            expires_at=token_expiry(now),
        )
        self.cache_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.cache_path, session.to_json(), mode=0o600)
        self.logins += 1
        log.info(
            "kite login ok", user=self.creds.user_id, expires_at=session.expires_at.isoformat()
        )
        return session


def require_credentials(settings: Settings) -> None:
    """Raise CredentialsError naming the missing ZERODHA_* variables (none missing: no-op)."""
    settings.require(*CREDENTIAL_FIELDS)


def has_credentials(settings: Settings) -> bool:
    try:
        require_credentials(settings)
    except CredentialsError:
        return False
    return True
