"""What the bus needs to know: servers, credentials, stream, subjects, limits (no settings here:
``shriven.app.bus`` builds these from them)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from pydantic import SecretStr

from shriven.bus.subjects import check_prefix, check_recorder_id

_STREAM_NAME: Final = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_SCHEMES: Final = ("nats", "tls", "ws", "wss")


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    nkey_seed: SecretStr | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """The stream `run --publish` creates when it is missing."""

    max_age_s: float = 7 * 86400.0  # 0: no limit
    max_bytes: int = -1  # -1: no limit
    replicas: int = 1
    duplicate_window_s: float = 120.0


@dataclass(frozen=True, slots=True)
class BusOptions:
    urls: tuple[str, ...]
    stream: str = "SHRIVEN"
    prefix: str = "shriven"
    recorder: str = "recorder"
    credentials: Credentials = field(default_factory=Credentials)
    limits: StreamLimits = field(default_factory=StreamLimits)
    max_in_flight: int = 20_000
    ack_timeout_s: float = 5.0
    buffer_records: int = 200_000
    connect_timeout_s: float = 2.0

    @property
    def shown_urls(self) -> str:
        return ",".join(redact_url(u) for u in self.urls)


def redact_url(url: str) -> str:
    """``url`` without a user or password in it: safe to log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://***@{host}{port}"


def check_url(url: str) -> str | None:
    """What is wrong with a server URL, or None."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        _port = parts.port
    except ValueError:
        return f"bad NATS URL {shown!r}: give nats://HOST:PORT (e.g. nats://127.0.0.1:4222)"
    if parts.scheme not in _SCHEMES or not parts.hostname or any(c.isspace() for c in url):
        return f"bad NATS URL {shown!r}: give nats://HOST:PORT (e.g. nats://127.0.0.1:4222)"
    return None


def check_options(options: BusOptions) -> str | None:
    """The first thing wrong with ``options`` as one line, or None."""
    if not options.urls:
        return "no NATS server: give nats://HOST:PORT or set SHRIVEN_NATS_URLS"
    for url in options.urls:
        problem = check_url(url)
        if problem:
            return problem
    if not _STREAM_NAME.match(options.stream):
        return (
            f"bad stream name {options.stream!r}: use letters, digits, '_' or '-' "
            "(set SHRIVEN_NATS_STREAM)"
        )
    return check_prefix(options.prefix) or check_recorder_id(options.recorder)
