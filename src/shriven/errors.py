"""Every exception shriven raises on purpose. Each message says what was wrong and what to do."""

from __future__ import annotations


class ShrivenError(Exception):
    """Base class; the CLI prints ``str(error)`` as one line and exits with ``exit_code``:
    2 for a request that cannot be served as asked (the default), 1 when the data is damaged or
    does not hold what was asked (see docs/operations.md, "Exit status")."""

    exit_code = 2


class ConfigError(ShrivenError):
    """A setting has a value that is not allowed."""


class CredentialsError(ShrivenError):
    """A credential is missing or was rejected by the venue."""


class WalError(ShrivenError):
    """The WAL could not be written or read."""

    exit_code = 1


class NotAStoreError(ShrivenError):
    """A path given as a store or WAL that is not one (missing, a file, no segments yet)."""


class StoreLockedError(ShrivenError):
    """Another recorder holds the data directory."""


class WalCorruptionError(WalError):
    """A frame failed its checksum or could not be decoded (strict readers raise this)."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"corrupt WAL frame in {path} at byte {offset}: {reason}; "
            "run `shriven wal check` to see the damage, or rerun with --skip-damaged to read "
            "past it (replay, replay book, wal verify-books; strict=False in Python)"
        )


class TickerLimitError(ShrivenError):
    """A Kite subscription larger than the ticker allows per API key."""


class VenueError(ShrivenError):
    """A venue answered with an error we cannot recover from by retrying."""


class UnknownSymbolError(ShrivenError):
    """A symbol the instruments do not define."""


class InstrumentsError(ShrivenError):
    """The Kite instrument dump could not be fetched, parsed or loaded from the cache."""


class LoginError(CredentialsError):
    """The Kite login flow was refused; the message names the step and the fix."""


class LoginRefusedError(LoginError):
    """Zerodha rejected the password or the TOTP code: posting the same ones again can lock the
    account, so the refusal is remembered (feeds.kite.auth). ``what``: "password" or "TOTP code"."""

    def __init__(self, message: str, what: str) -> None:
        super().__init__(message)
        self.what = what


class UniverseError(ShrivenError):
    """The instruments do not allow the requested subscription plan."""


class ReplayError(ShrivenError):
    """A replay request that cannot be served as asked (bad time, unknown symbol, bad format)."""


class NotRecordedError(ReplayError):
    """The store holds nothing of an instrument that was asked for (a typo, another store)."""

    exit_code = 1


class ArchiveError(ShrivenError):
    """An archive could not be written, verified or read back; local segments are kept."""

    exit_code = 1
