"""The Kite web login, step by step, as a browser does it (synchronous, ``requests``):

1. ``POST {login_root}/api/login`` with user_id and password -> ``request_id``;
2. ``POST {login_root}/api/twofa`` with the request_id and a TOTP code from ZERODHA_TOTP_SECRET
   (``twofa_type=totp``) -> a logged-in web session (cookies);
3. ``GET {login_root}/connect/login?v=3&api_key=...`` with that session; Kite redirects until a
   ``Location`` carries ``request_token`` for the app's redirect URL, which we read and never fetch;
4. ``KiteConnect.generate_session(request_token, api_secret)`` against ``kite_api_root`` ->
   ``access_token``.

Every refusal becomes a LoginError naming the cause and the fix; venue text is scrubbed of our
secrets before it is shown.
"""

from __future__ import annotations

import binascii
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urljoin, urlsplit

import pyotp
import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex
from pydantic import SecretStr

from shriven.config import Settings
from shriven.errors import LoginError, LoginRefusedError, VenueError

MAX_REDIRECTS = 10
UNKNOWN_API_KEY = (
    "Kite Connect does not know ZERODHA_API_KEY: copy the API key of your app from "
    "developers.kite.trade (My apps)"
)
CREDENTIAL_FIELDS = (
    "zerodha_api_key",
    "zerodha_api_secret",
    "zerodha_user_id",
    "zerodha_password",
    "zerodha_totp_secret",
)


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

    def fingerprint(self, salt: bytes) -> str:
        """A salted, slow hash of every credential: tells whether they changed since a refusal
        without keeping them (or a fast hash a stolen file could be brute-forced from)."""
        blob = "\0".join(
            (self.user_id, self.api_key, self.api_secret, self.password, self.totp_secret)
        )
        return hashlib.pbkdf2_hmac("sha256", blob.encode(), salt, 100_000).hex()


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
        raise LoginRefusedError(
            f"Zerodha refused the login for user {creds.user_id} "
            f"(HTTP {resp.status_code}: {scrub(doc.get('message', 'no message'))}): check "
            "ZERODHA_USER_ID and ZERODHA_PASSWORD (log in once at kite.zerodha.com if the "
            "account may be locked)",
            "password",
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
        raise LoginRefusedError(
            f"Zerodha rejected the TOTP code (HTTP {resp.status_code}: "
            f"{scrub(doc.get('message', 'no message'))}): check that ZERODHA_TOTP_SECRET is the "
            "secret of the account's external TOTP and that this machine's clock is correct "
            "(codes last 30 s; sync it with NTP)",
            "TOTP code",
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
            raise LoginError(UNKNOWN_API_KEY)
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
            raise LoginError(UNKNOWN_API_KEY) from None
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
