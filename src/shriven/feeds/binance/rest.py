"""REST depth snapshots (``GET /api/v3/depth``) with back-off on rate limits and server errors."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable

import aiohttp

from shriven.errors import VenueError
from shriven.events import now_ns
from shriven.logging import get_logger

__all__ = ["SnapshotClient", "venue_message"]

log = get_logger("shriven.binance.rest")

RETRY_STATUSES = frozenset({418, 429, 500, 502, 503, 504})


MESSAGE_CHARS = 200
MAX_BAN_SECS = 3 * 24 * 3600


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
    """Fetches depth snapshots (and, for the futures venues, open interest and exchangeInfo).
    Rate-limit answers (429, 418) and 5xx are retried after the venue's ``Retry-After`` (or
    exponential back-off with jitter), capped at ``max_backoff``; other 4xx answers (unknown
    symbol, bad limit) raise :class:`VenueError` at once.

    The venue's weight header (``X-MBX-USED-WEIGHT-1M``: weight used by this IP in the current
    minute) is read from every answer; a request that would take the minute's weight past
    ``weight_headroom`` of ``weight_limit`` waits for the next minute instead of earning a 429.
    A 429 or 418 is logged once per episode (until a request succeeds) and counted."""

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
        depth_path: str = "/api/v3/depth",
        depth_weight: Callable[[int], int] = lambda limit: 0,
        weight_limit: int = 0,
        weight_headroom: float = 0.9,
        venue: str = "binance",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_root = api_root.rstrip("/")
        self.limit = limit
        self.timeout = timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.on_venue_error = on_venue_error
        self.depth_path = depth_path
        self.depth_weight = depth_weight
        self.weight_limit = weight_limit  # 0: no pacing by weight
        self.weight_headroom = weight_headroom
        self.venue = venue
        self._clock = clock  # wall-clock seconds: Binance's weight counts per clock minute
        self.requests = 0
        self.retries = 0
        self.rate_limited = 0  # 429/418 answers
        self.weight_waits = 0  # requests held back to the next minute by the weight header
        self.used_weight = 0  # the last X-MBX-USED-WEIGHT-1M seen
        self._weight_minute = -1  # the clock minute used_weight belongs to
        self._limited = False  # inside a 429/418 episode (logged once)
        self._sem = asyncio.Semaphore(max_concurrent)
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, symbol: str, limit: int | None = None) -> tuple[bytes, int]:
        """The raw depth answer body for ``symbol`` and the local time (ns) it was received."""
        n = limit or self.limit
        return await self.get(
            self.depth_path,
            {"symbol": symbol, "limit": str(n)},
            weight=self.depth_weight(n),
            symbol=symbol,
            what="depth snapshot",
        )

    async def get(
        self,
        path: str,
        params: dict[str, str],
        *,
        weight: int = 1,
        symbol: str = "",
        what: str = "request",
    ) -> tuple[bytes, int]:
        """The raw body of a 200 answer to ``GET path`` and the local time (ns) it arrived."""
        url = f"{self.api_root}{path}"
        backoff = self.initial_backoff
        while True:
            retry_after: float | None = None
            try:
                async with self._sem:
                    await self._weight_room(weight)
                    status, body, retry_after = await self._get(url, params)
                recv_ns = now_ns()
                if status == 200:
                    self._limited = False
                    return body, recv_ns
                message = venue_message(body)
                if self.on_venue_error is not None:
                    self.on_venue_error(symbol, status, message)
                if status not in RETRY_STATUSES:
                    raise VenueError(
                        f"{self.venue} refused the {what} for {symbol or path} (HTTP {status}, "
                        f"{message}); check the symbol and the {self.venue} settings"
                    )
                if status in (418, 429):
                    self.rate_limited += 1
                    if not self._limited:
                        self._limited = True
                        log.warning(
                            "rate limited by the venue, obeying Retry-After",
                            venue=self.venue,
                            status=status,
                            retry_after_s=retry_after,
                            venue_message=message,
                        )
                else:
                    log.warning(
                        f"{what} refused, backing off",
                        venue=self.venue,
                        symbol=symbol,
                        status=status,
                        venue_message=message,
                        retry_after_s=retry_after,
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning(f"{what} request failed", symbol=symbol, error=repr(exc))
            self.retries += 1
            if retry_after is not None:  # the venue said how long: never retry sooner
                # A 429's wait and a 418 ban last as long as they say (a ban: 2 minutes to 3
                # days), whatever max_backoff is: asking sooner is what earns the ban.
                cap = MAX_BAN_SECS if status in (418, 429) else self.max_backoff
                delay = min(retry_after, cap)
            else:
                delay = min(backoff, self.max_backoff) * (0.5 + self._rng.random() / 2)
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, self.max_backoff)

    async def _weight_room(self, weight: int) -> None:
        """Wait for the next clock minute if ``weight`` more would pass the headroom."""
        if not self.weight_limit or not weight:
            return
        now = self._clock()
        minute = int(now // 60)
        if minute != self._weight_minute:
            return  # a new minute: the venue's count has restarted
        if self.used_weight + weight <= self.weight_limit * self.weight_headroom:
            return
        self.weight_waits += 1
        if self.weight_waits == 1:
            log.info(
                "REST weight near the venue's limit, waiting for the next minute",
                venue=self.venue,
                used_weight=self.used_weight,
                limit=self.weight_limit,
            )
        await asyncio.sleep((minute + 1) * 60 - now + 0.05)

    async def _get(self, url: str, params: dict[str, str]) -> tuple[int, bytes, float | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self.requests += 1
        async with self._session.get(url, params=params) as resp:
            body = await resp.read()
            self._note_weight(resp.headers.get("X-MBX-USED-WEIGHT-1M"))
            retry_after = None
            header = resp.headers.get("Retry-After")
            if header is not None:
                try:
                    retry_after = float(header)
                except ValueError:
                    retry_after = None
            return resp.status, body, retry_after

    def _note_weight(self, header: str | None) -> None:
        if header is None:
            return
        try:
            used = int(header)
        except ValueError:
            return
        if 0 <= used < 10**9:
            self.used_weight = used
            self._weight_minute = int(self._clock() // 60)
