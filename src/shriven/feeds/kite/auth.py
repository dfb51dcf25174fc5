"""Automatic daily Kite login and the access-token cache.

The flow (the same requests a browser makes):
1. ``POST {login_root}/api/login`` with user_id and password -> ``request_id``;
2. ``POST {login_root}/api/twofa`` with the request_id and a TOTP code from ZERODHA_TOTP_SECRET
   (``twofa_type=totp``) -> a logged-in web session (cookies);
3. ``GET {login_root}/connect/login?v=3&api_key=...`` with that session; Kite redirects until a
   ``Location`` carries ``request_token`` for the app's redirect URL, which we read and never fetch;
4. ``KiteConnect.generate_session(request_token, api_secret)`` against ``kite_api_root`` ->
   ``access_token``.

The token is cached at ``{cache_dir}/zerodha/zerodha_token_<user_id>.json`` (mode 0600, written
atomically) and reused until it expires, about 06:00 IST the next morning. When the API answers
that a token is invalid (kiteconnect's ``TokenException``) we log in again once.

Secrets and tokens never reach logs or exception messages.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, urljoin, urlsplit
from zoneinfo import ZoneInfo

import pyotp
import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex
from pydantic import SecretStr

from shriven.config import Settings
from shriven.errors import CredentialsError, LoginError, VenueError
from shriven.feeds.kite.files import atomic_write
from shriven.logging import get_logger

log = get_logger(__name__)

IST = ZoneInfo("Asia/Kolkata")
TOKEN_EXPIRES_AT_IST = dtime(6, 0)
MAX_REDIRECTS = 10
# A refresh asked for within this long of a login reuses that login (see KiteAuth.invalidate).
REFRESH_GRACE = timedelta(seconds=30)
CREDENTIAL_FIELDS = (
    "zerodha_api_key",
    "zerodha_api_secret",
    "zerodha_user_id",
    "zerodha_password",
    "zerodha_totp_secret",
)
T = TypeVar("T")
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class KiteCredentials:
    user_id: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    password: str = field(repr=False)
    totp_secret: str = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> KiteCredentials:
        """Raises CredentialsError naming every missing ZERODHA_* variable."""
        settings.require(*CREDENTIAL_FIELDS)

        def secret(value: SecretStr | None) -> str:
            return value.get_secret_value() if value is not None else ""

        return cls(
            user_id=str(settings.zerodha_user_id).strip().upper(),
            api_key=secret(settings.zerodha_api_key).strip(),
            api_secret=secret(settings.zerodha_api_secret).strip(),
            password=secret(settings.zerodha_password),  # may legitimately hold spaces
            totp_secret=secret(settings.zerodha_totp_secret).replace(" ", "").upper(),
        )

    def secrets(self) -> tuple[str, ...]:
        return (self.api_secret, self.password, self.totp_secret)


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


def token_cache_path(cache_dir: Path, user_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", user_id)
    return Path(cache_dir) / "zerodha" / f"zerodha_token_{safe}.json"


# ---------------------------------------------------------------- the web login


class _Scrubber:
    """Removes secrets from text that came back from the venue before we show it."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self._secrets = tuple(s for s in secrets if len(s) >= 4)

    def __call__(self, text: object) -> str:
        out = str(text)[:200]
        for s in self._secrets:
            out = out.replace(s, "***")
        return out


def _json(resp: requests.Response) -> dict[str, object]:
    try:
        doc = resp.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def web_login(
    creds: KiteCredentials,
    login_root: str,
    *,
    timeout: float = 15.0,
    now: Callable[[], float] = time.time,
) -> str:
    """Steps 1-3 of the flow: returns a request_token for ``creds.api_key``."""
    scrub = _Scrubber(creds.secrets())
    root = login_root.rstrip("/")
    with requests.Session() as http:
        http.headers["X-Kite-Version"] = "3"
        try:
            request_id = _password_step(http, root, creds, scrub, timeout)
            _totp_step(http, root, creds, request_id, scrub, timeout, now)
            return _request_token_step(http, root, creds, timeout)
        except requests.RequestException as exc:
            raise VenueError(
                f"cannot reach the Kite login server at {root} ({type(exc).__name__}); "
                "check the network and SHRIVEN_KITE_LOGIN_ROOT"
            ) from None


def _password_step(
    http: requests.Session,
    root: str,
    creds: KiteCredentials,
    scrub: _Scrubber,
    timeout: float,
) -> str:
    resp = http.post(
        root + "/api/login",
        data={"user_id": creds.user_id, "password": creds.password},
        timeout=timeout,
    )
    doc = _json(resp)
    data = doc.get("data")
    if resp.status_code != 200 or doc.get("status") != "success" or not isinstance(data, dict):
        raise LoginError(
            f"Zerodha refused the login for user {creds.user_id} "
            f"(HTTP {resp.status_code}: {scrub(doc.get('message', 'no message'))}): check "
            "ZERODHA_USER_ID and ZERODHA_PASSWORD (log in once at kite.zerodha.com if the "
            "account may be locked)"
        )
    twofa_type = str(data.get("twofa_type", "totp"))
    if twofa_type != "totp":
        raise LoginError(
            f"the account's two-factor method is {twofa_type!r}, not TOTP: enable external "
            "TOTP at kite.zerodha.com (My profile > Password & Security) and put its secret "
            "in ZERODHA_TOTP_SECRET"
        )
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise VenueError("the Kite login answer has no request_id; try again later")
    return request_id


def _totp_code(secret: str, now: Callable[[], float]) -> str:
    try:
        totp = pyotp.TOTP(secret)
        t = now()
        # A code in its last second may be stale on arrival; wait for the next window instead.
        remaining = totp.interval - (t % totp.interval)
        if remaining < 1.5:
            time.sleep(remaining)
            t = now()
        return totp.at(t)
    except (binascii.Error, ValueError, TypeError):
        raise LoginError(
            "ZERODHA_TOTP_SECRET is not a valid TOTP secret (base32, 32 characters on Kite): "
            "use the text shown under the QR code when you enabled external TOTP on Kite"
        ) from None


def _totp_step(
    http: requests.Session,
    root: str,
    creds: KiteCredentials,
    request_id: str,
    scrub: _Scrubber,
    timeout: float,
    now: Callable[[], float],
) -> None:
    code = _totp_code(creds.totp_secret, now)
    resp = http.post(
        root + "/api/twofa",
        data={
            "user_id": creds.user_id,
            "request_id": request_id,
            "twofa_value": code,
            "twofa_type": "totp",
        },
        timeout=timeout,
    )
    doc = _json(resp)
    if resp.status_code != 200 or doc.get("status") != "success":
        raise LoginError(
            f"Zerodha rejected the TOTP code (HTTP {resp.status_code}: "
            f"{scrub(doc.get('message', 'no message'))}): check that ZERODHA_TOTP_SECRET is the "
            "secret of the account's external TOTP and that this machine's clock is correct "
            "(codes last 30 s; sync it with NTP)"
        )


def _request_token_step(
    http: requests.Session, root: str, creds: KiteCredentials, timeout: float
) -> str:
    url = f"{root}/connect/login?v=3&api_key={creds.api_key}"
    for _ in range(MAX_REDIRECTS):
        resp = http.get(url, allow_redirects=False, timeout=timeout)
        location = resp.headers.get("Location")
        if resp.is_redirect and location:
            query = parse_qs(urlsplit(location).query)
            if "request_token" in query:
                if query.get("status", ["success"])[0] != "success":
                    break
                return query["request_token"][0]
            url = urljoin(url, location)
            continue
        body = resp.text[:500].lower()
        if resp.status_code in (400, 403, 404) and "api_key" in body:
            raise LoginError(
                "Kite Connect does not know ZERODHA_API_KEY: copy the API key of your app from "
                "developers.kite.trade (My apps)"
            )
        break
    stopped = urlsplit(url).path
    raise LoginError(
        f"Kite Connect did not hand out a request_token (stopped at {stopped}): the app may "
        "not be enabled or not yet authorised for this user; open "
        f"{root}/connect/login?v=3&api_key=<ZERODHA_API_KEY> once in a browser, approve the "
        "app, and check at developers.kite.trade that the app is active"
    )


def exchange_request_token(
    creds: KiteCredentials, request_token: str, api_root: str, *, timeout: float = 15.0
) -> str:
    """Step 4: the access_token for a request_token (kiteconnect's generate_session)."""
    kite = KiteConnect(creds.api_key, root=api_root.rstrip("/"), timeout=timeout)
    try:
        session = kite.generate_session(request_token, api_secret=creds.api_secret)
    except kex.TokenException as exc:
        if "checksum" in str(exc).lower():
            raise LoginError(
                "Kite rejected the session checksum: ZERODHA_API_SECRET does not belong to "
                "ZERODHA_API_KEY; copy both from developers.kite.trade (My apps)"
            ) from None
        raise LoginError(
            "Kite refused the request token (it expires within minutes of the login); "
            "run the command again"
        ) from None
    except kex.InputException as exc:
        if "api_key" in str(exc).lower():
            raise LoginError(
                "Kite Connect does not know ZERODHA_API_KEY: copy the API key of your app from "
                "developers.kite.trade (My apps)"
            ) from None
        raise LoginError(f"Kite refused the session exchange ({type(exc).__name__})") from None
    except kex.KiteException as exc:
        raise VenueError(
            f"Kite's session exchange failed ({type(exc).__name__}, HTTP {exc.code}); "
            "try again later"
        ) from None
    except requests.RequestException as exc:
        raise VenueError(
            f"cannot reach the Kite API at {api_root} ({type(exc).__name__}); check the network "
            "and SHRIVEN_KITE_API_ROOT"
        ) from None
    token = session.get("access_token") if isinstance(session, dict) else None
    if not isinstance(token, str) or not token:
        raise VenueError("Kite's session answer has no access_token; try again later")
    return token


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
    ) -> None:
        self.creds = creds
        self.login_root = login_root
        self.api_root = api_root
        self.cache_path = token_cache_path(cache_dir, creds.user_id)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._timeout = timeout
        self._session: KiteSession | None = None
        self._lock = threading.RLock()
        self.logins = 0

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> KiteAuth:
        return cls(
            KiteCredentials.from_settings(settings),
            login_root=settings.kite_login_root,
            api_root=settings.kite_api_root,
            cache_dir=settings.cache_dir,
            clock=clock,
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

    def invalidate(self, *, unless_younger_than: timedelta = timedelta(0)) -> None:
        """Forget the token (the venue said it is invalid); the next session() logs in.

        A token logged in less than ``unless_younger_than`` ago is kept: several connections
        refused together must cause one login, not one each."""
        with self._lock:
            s = self._session or self._read_cache()
            if s is not None and self._clock() - s.login_time < unless_younger_than:
                return
            self._session = None
            self.cache_path.unlink(missing_ok=True)

    def kite(self) -> KiteConnect:
        """A kiteconnect client for ``api_root`` with a valid access token."""
        s = self.session()
        return KiteConnect(
            self.creds.api_key, access_token=s.access_token, root=self.api_root.rstrip("/")
        )

    def call(self, fn: Callable[[KiteConnect], T]) -> T:
        """Run ``fn`` with a client; on TokenException log in again and retry once."""
        try:
            return fn(self.kite())
        except kex.TokenException:
            log.warning("kite token rejected, logging in again", user=self.creds.user_id)
            self.invalidate()
            return fn(self.kite())

    async def access_token(self, *, refresh: bool = False) -> str:
        """For async callers (the ticker): a valid token; ``refresh=True`` after a rejection."""
        if refresh:
            await asyncio.to_thread(self.invalidate, unless_younger_than=REFRESH_GRACE)
        s = await asyncio.to_thread(self.session)
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

    def _login(self, now: datetime) -> KiteSession:
        log.info("kite login", user=self.creds.user_id, login_root=self.login_root)
        request_token = web_login(self.creds, self.login_root, timeout=self._timeout)
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
