"""REST depth snapshots (``GET /api/v3/depth``) with back-off on rate limits and server errors."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable

import aiohttp

from shriven.errors import VenueError
from shriven.events import now_ns
from shriven.logging import get_logger

__all__ = ["SnapshotClient", "venue_message"]

log = get_logger("shriven.binance.rest")

RETRY_STATUSES = frozenset({418, 429, 500, 502, 503, 504})


MESSAGE_CHARS = 200


def venue_message(body: bytes) -> str:
    """Binance's ``{"code": -1003, "msg": "..."}`` error text, or the start of the body; at most
    200 characters either way (it goes into logs and a status record)."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and "msg" in data:
            return f"code {data.get('code')!s:.20}: {data['msg']!s}"[:MESSAGE_CHARS]
    except (ValueError, RecursionError):  # not JSON, or nested too deep to be an answer
        pass
    return body[:MESSAGE_CHARS].decode("utf-8", "replace")


class SnapshotClient:
    """Fetches depth snapshots. Rate-limit answers (429, 418) and 5xx are retried after the
    venue's ``Retry-After`` (or exponential back-off with jitter), capped at ``max_backoff``;
    other 4xx answers (unknown symbol, bad limit) raise :class:`VenueError` at once."""

    def __init__(
        self,
        api_root: str,
        *,
        limit: int = 1000,
        timeout: float = 10.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 60.0,
        max_concurrent: int = 4,
        on_venue_error: Callable[[str, int, str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.api_root = api_root.rstrip("/")
        self.limit = limit
        self.timeout = timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.on_venue_error = on_venue_error
        self.requests = 0
        self.retries = 0
        self._sem = asyncio.Semaphore(max_concurrent)
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, symbol: str, limit: int | None = None) -> tuple[bytes, int]:
        """The raw answer body for ``symbol`` and the local time (ns) it was received."""
        url = f"{self.api_root}/api/v3/depth"
        params = {"symbol": symbol, "limit": str(limit or self.limit)}
        backoff = self.initial_backoff
        while True:
            retry_after: float | None = None
            try:
                async with self._sem:
                    status, body, retry_after = await self._get(url, params)
                recv_ns = now_ns()
                if status == 200:
                    return body, recv_ns
                message = venue_message(body)
                if self.on_venue_error is not None:
                    self.on_venue_error(symbol, status, message)
                if status not in RETRY_STATUSES:
                    raise VenueError(
                        f"Binance refused the depth snapshot for {symbol} (HTTP {status}, "
                        f"{message}); check the symbol and SHRIVEN_BINANCE_DEPTH_LIMIT"
                    )
                log.warning(
                    "depth snapshot refused, backing off",
                    symbol=symbol,
                    status=status,
                    venue_message=message,
                    retry_after_s=retry_after,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("depth snapshot request failed", symbol=symbol, error=repr(exc))
            self.retries += 1
            if retry_after is not None:  # the venue said how long: never retry sooner
                delay = min(retry_after, self.max_backoff)
            else:
                delay = min(backoff, self.max_backoff) * (0.5 + self._rng.random() / 2)
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, self.max_backoff)

    async def _get(self, url: str, params: dict[str, str]) -> tuple[int, bytes, float | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self.requests += 1
        async with self._session.get(url, params=params) as resp:
            body = await resp.read()
            retry_after = None
            header = resp.headers.get("Retry-After")
            if header is not None:
                try:
                    retry_after = float(header)
                except ValueError:
                    retry_after = None
            return resp.status, body, retry_after
