"""The server's options: what ``shriven serve`` and ``run --serve`` build from the settings."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from shriven.errors import ConfigError

__all__ = ["ServeOptions", "is_loopback"]


@dataclass(slots=True, frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 0  # 0: the OS picks one
    api_key: SecretStr | None = None
    max_clients: int = 500
    max_subscriptions: int = 3000  # per client: Kite tokens or Binance streams
    # Unsent bytes held for one live client (beyond its socket's kernel buffer) before it is cut
    client_buffer_bytes: int = 4 * 1024 * 1024
    history_stall_secs: float = 60.0
    # The kernel's send buffer per client socket (SO_SNDBUF): without a bound, loopback
    # autotuning lets a client that stopped reading absorb megabytes before its queue fills.
    socket_send_buffer: int = 256 * 1024
    heartbeat_secs: float = 1.0  # Kite: a 1-byte heartbeat after this long with nothing sent
    cache_dir: Path | None = None  # the Kite instruments cache, for names in the query API

    def check(self) -> None:
        """Raise ConfigError for a bind address other than loopback without an API key."""
        key = self.api_key.get_secret_value() if self.api_key is not None else ""
        if not is_loopback(self.host) and not key:
            raise ConfigError(
                f"serving on {self.host} needs an API key: set SHRIVEN_SERVE__API_KEY (clients "
                "send it as access_token, key= or an X-MBX-APIKEY header), or bind 127.0.0.1"
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
