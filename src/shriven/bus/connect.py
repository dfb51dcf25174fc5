"""Connecting to NATS with our credentials, and the stream the bus uses (created if missing)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from shriven.bus.options import BusOptions

__all__ = ["BusConfigError", "connect", "describe_error", "ensure_stream", "error_text"]


class BusConfigError(Exception):
    """The bus refuses our settings (credentials, a stream with other settings): retrying with
    the same ones cannot help; the message says what to change."""


def error_text(exc: BaseException) -> str:
    """One line for a NATS client error (its class when it has no message)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _tls(options: BusOptions) -> ssl.SSLContext | None:
    c = options.credentials
    if not (c.tls_ca_file or c.tls_cert_file) and not any(
        u.startswith(("tls://", "wss://")) for u in options.urls
    ):
        return None
    ctx = ssl.create_default_context(cafile=str(c.tls_ca_file) if c.tls_ca_file else None)
    if c.tls_cert_file:
        ctx.load_cert_chain(str(c.tls_cert_file), str(c.tls_key_file) if c.tls_key_file else None)
    return ctx


def _checked_seed(seed: str) -> str:
    """``seed`` if nkeys can read it. nats-py reads it at every connection attempt and raises
    nkeys' error from each, which the publisher took for a server to retry forever."""
    import nkeys  # only with a seed: it loads libsodium

    try:
        nkeys.from_seed(seed.encode())
    except (nkeys.NkeysError, ValueError):
        raise BusConfigError(
            "SHRIVEN_NATS_NKEY_SEED is not an nkey seed: give the user's seed (58 characters, "
            "starting SU), not its public key (U...)"
        ) from None
    return seed


def describe_error(options: BusOptions, exc: BaseException) -> str:
    """One line for a failed connection attempt, naming the fix for refused credentials."""
    if "authorization" in str(exc).lower():
        return (
            f"NATS at {options.shown_urls} refused our credentials ({error_text(exc)}): check "
            "SHRIVEN_NATS_USER/PASSWORD, SHRIVEN_NATS_TOKEN or SHRIVEN_NATS_NKEY_SEED"
        )
    return f"cannot reach NATS at {options.shown_urls} ({error_text(exc)})"


async def connect(
    options: BusOptions,
    *,
    name: str,
    on_error: Callable[[str], None] | None = None,
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
    give_up_after_s: float | None = None,
) -> Client:
    """A connected client. The client keeps trying every server (first connection included),
    calling ``on_error`` with a line per failed attempt; with ``give_up_after_s`` it raises
    BusConfigError with the last such line once that time has passed."""
    c = options.credentials
    last: list[str] = []
    refused: list[str] = []

    async def error_cb(exc: Exception) -> None:
        text = describe_error(options, exc)
        last.append(text)
        del last[:-1]
        if "refused our credentials" in text:
            # a server that refuses may also reset the next attempt before its -ERR arrives:
            # the refusal is what the user has to fix, so it is what a give-up reports
            refused[:] = [text]
        if on_error is not None:
            on_error(text)

    kwargs: dict[str, object] = {}
    if c.user:
        kwargs["user"] = c.user
    if c.password is not None:
        kwargs["password"] = c.password.get_secret_value()
    if c.token is not None:
        kwargs["token"] = c.token.get_secret_value()
    if c.nkey_seed is not None:
        kwargs["nkeys_seed_str"] = _checked_seed(c.nkey_seed.get_secret_value())
    try:
        tls = _tls(options)
    except (OSError, ssl.SSLError) as exc:
        raise BusConfigError(f"cannot use the TLS files: {exc}; check SHRIVEN_NATS_TLS_*") from None
    if tls is not None:
        kwargs["tls"] = tls
    if on_disconnect is not None:
        kwargs["disconnected_cb"] = on_disconnect
    if on_reconnect is not None:
        kwargs["reconnected_cb"] = on_reconnect
    attempt = nats.connect(
        servers=list(options.urls),
        name=name,
        connect_timeout=options.connect_timeout_s,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=error_cb,
        # our subjects are valid by construction (bus/subjects.py); checking each costs
        skip_subject_validation=True,
        **kwargs,  # type: ignore[arg-type]
    )
    try:
        if give_up_after_s is None:
            return await attempt
        return await asyncio.wait_for(attempt, give_up_after_s)
    except TimeoutError:
        if refused:
            raise BusConfigError(
                f"{refused[-1]} (still refused after {give_up_after_s:g} s)"
            ) from None
        raise BusConfigError(
            (last[-1] if last else f"cannot reach NATS at {options.shown_urls}")
            + f" for {give_up_after_s:g} s: start the server or fix the URL"
        ) from None


def stream_config(options: BusOptions) -> StreamConfig:
    lim = options.limits
    return StreamConfig(
        name=options.stream,
        subjects=[f"{options.prefix}.>"],
        storage=StorageType.FILE,
        max_age=lim.max_age_s or None,
        max_bytes=lim.max_bytes,
        num_replicas=lim.replicas,
        duplicate_window=lim.duplicate_window_s,
        # fast-ingest batches (nats-server 2.14+; an older server ignores it and the publisher
        # falls back to an ack per record)
        allow_batched=True,
    )


def _covers(subjects: list[str], prefix: str) -> bool:
    return f"{prefix}.>" in subjects or ">" in subjects


async def ensure_stream(js: JetStreamContext, options: BusOptions) -> tuple[StreamInfo, str]:
    """The stream's info, creating it with our limits when missing; plus a warning line ("" if
    none) when it exists with other limits. BusConfigError when it exists but does not take our
    subjects."""
    try:
        info = await js.stream_info(options.stream)
    except NotFoundError:
        try:
            info = await js.add_stream(stream_config(options))
        except nats.js.errors.BadRequestError as exc:
            raise BusConfigError(
                f"cannot create stream {options.stream} for {options.prefix}.>: "
                f"{exc.description}; pick another SHRIVEN_NATS_STREAM or "
                "SHRIVEN_NATS_SUBJECT_PREFIX"
            ) from None
        return info, ""
    cfg = info.config
    subjects = list(cfg.subjects or [])
    if not _covers(subjects, options.prefix):
        raise BusConfigError(
            f"stream {options.stream} exists with subjects {subjects}, not {options.prefix}.>: "
            "use its prefix (SHRIVEN_NATS_SUBJECT_PREFIX), another SHRIVEN_NATS_STREAM, or "
            "change the stream"
        )
    want = stream_config(options)
    differ = [
        f"{name} {have} (settings say {wanted})"
        for name, have, wanted in (
            ("replicas", cfg.num_replicas, want.num_replicas),
            ("max_age", cfg.max_age or None, want.max_age),
            ("max_bytes", cfg.max_bytes, want.max_bytes),
            ("duplicate_window", cfg.duplicate_window, want.duplicate_window),
        )
        if not _same(have, wanted)
    ]
    warning = (
        f"stream {options.stream} exists with other limits: {', '.join(differ)}; the stream's "
        "own settings apply"
        if differ
        else ""
    )
    return info, warning


def _same(a: object, b: object) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) < 1e-6
    return a == b
