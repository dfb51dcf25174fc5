"""The API key check every request passes when a key is set: constant-time comparison."""

from __future__ import annotations

import hmac

from aiohttp import web
from pydantic import SecretStr

__all__ = ["key_matches", "presented_key"]


def presented_key(request: web.Request) -> str | None:
    """The key the client sent: a ``/key/KEY/`` path prefix, ``key=`` or ``access_token=``
    (KiteTicker's) in the query, an ``X-MBX-APIKEY`` header (Binance clients') or
    ``Authorization: Bearer KEY``."""
    found = request.match_info.get("key")
    if found is None:
        found = request.query.get("key") or request.query.get("access_token")
    if found is None:
        found = request.headers.get("X-MBX-APIKEY")
    if found is None:
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            found = auth[7:].strip()
    return found


def key_matches(presented: str | None, expected: SecretStr) -> bool:
    """Compared in constant time (hmac.compare_digest): the time taken says nothing of how much
    of a wrong key was right."""
    want = expected.get_secret_value().encode("utf-8")
    got = (presented or "").encode("utf-8", "surrogatepass")
    return hmac.compare_digest(got, want) and presented is not None
