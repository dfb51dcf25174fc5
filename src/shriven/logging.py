"""structlog setup: readable console output for humans, JSON lines with ``--log-json``."""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from shriven.errors import ConfigError

if TYPE_CHECKING:
    import structlog

_SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|totp|api_key|authorization|enctoken)", re.I
)
_REDACTED = "***"
# Secrets inside text: URL query parameters and `name: value` pairs (the Kite ticker URL carries
# the access token, which the websockets library prints at debug level) and Authorization headers.
_SECRET_PARAM = re.compile(
    r"\b((?:access_token|api_key|api_secret|request_token|enctoken|password|totp\w*|sess_id)"
    r"['\"]?\s*[=:]\s*['\"]?)[^&\s'\",}]+",
    re.I,
)
_AUTH_HEADER = re.compile(r"(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\r\n,}]+", re.I)
LEVELS = ("debug", "info", "warning", "error")


def scrub(text: str) -> str:
    """``text`` with secret query parameters and Authorization header values masked."""
    if "=" not in text and ":" not in text:
        return text
    return _AUTH_HEADER.sub(r"\1" + _REDACTED, _SECRET_PARAM.sub(r"\1" + _REDACTED, text))


class _ScrubFilter(logging.Filter):
    """Masks secrets in records of the standard library loggers (websockets, urllib3...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _redact_secrets(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Last line of defence: any field whose name looks secret is masked before rendering."""
    for key in list(event_dict):
        if key != "event" and _SECRET_KEY.search(key) and not key.endswith(("_count", "_ok")):
            value = event_dict[key]
            if not isinstance(value, int | float | bool):
                event_dict[key] = _REDACTED
        elif isinstance(event_dict[key], str):
            event_dict[key] = scrub(event_dict[key])
    return event_dict


def format_traceback(exc_info: structlog.typing.ExcInfo) -> str:
    """The standard library's traceback text (source lines and messages, never the frames'
    local variables), scrubbed like log fields. structlog's default console formatter, rich or
    better-exceptions when installed, prints every local of every frame: on the login path that
    is the password, the TOTP secret and the tokens in clear."""
    return scrub("".join(traceback.format_exception(*exc_info)))


def _console_traceback(sio: TextIO, exc_info: structlog.typing.ExcInfo) -> None:
    sio.write("\n" + format_traceback(exc_info))


def parse_rotation(text: str) -> int | None:
    """``--log-rotate``: ``daily`` (None: at midnight UTC) or a size such as ``100MB`` (bytes)."""
    if text.strip().lower() == "daily":
        return None
    from shriven.sizes import parse_size

    try:
        size = parse_size(text, "--log-rotate")
    except ConfigError:
        size = 0
    if size <= 0:
        raise ConfigError(f"bad --log-rotate {text!r}: use daily or a size such as 100MB")
    return size


def _file_handler(path: Path, rotate: str, keep: int) -> logging.Handler:
    """The stdlib rotating handler for ``--log-file``: by size or daily, ``keep`` old files."""
    from logging.handlers import RotatingFileHandler, TimedRotatingFileHandler

    if keep < 1:
        raise ConfigError(f"bad --log-keep {keep}: keep at least 1 old file")
    size = parse_rotation(rotate)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if size is None:
            return TimedRotatingFileHandler(
                path, when="midnight", backupCount=keep, encoding="utf-8", utc=True
            )
        return RotatingFileHandler(path, maxBytes=size, backupCount=keep, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot write the log file {path}: {exc.strerror}; give a writable --log-file"
        ) from None


def configure_logging(
    level: str = "info",
    json: bool = False,
    log_file: Path | None = None,
    rotate: str = "daily",
    keep: int = 14,
) -> None:
    """Console (or JSON) lines on stderr; with ``log_file`` the same events also go to that file
    (JSON with ``json``, plain text otherwise), rotated by ``rotate`` with ``keep`` old files.

    Without a log file, and when nothing has imported structlog yet, the setup waits for the
    first log call: importing structlog (which imports twisted and rich when they are installed)
    took about half of a cold `shriven replay book`, a command that normally logs nothing."""
    global _pending
    if level.lower() not in LEVELS:
        raise ConfigError(f"bad --log-level {level!r}: use {', '.join(LEVELS)}")
    _pending = None
    if log_file is None and "structlog" not in sys.modules:
        _pending = (level, json)
        logging.basicConfig(
            level=logging.getLevelName(level.upper()), handlers=[_DeferredHandler()], force=True
        )
        _quiet_websockets(logging.getLevelName(level.upper()))
        return
    _configure(level, json, log_file, rotate, keep)


# (level, json) of a configure_logging call whose structlog setup waits for the first log call
_pending: tuple[str, bool] | None = None


def _apply_pending() -> None:
    global _pending
    if _pending is not None:
        level, json = _pending
        _pending = None
        _configure(level, json, None, "daily", 14)


class _DeferredHandler(logging.Handler):
    """The root handler until the real one exists: the first record a library logs sets
    logging up and then goes through it, scrubbed like every other."""

    def emit(self, record: logging.LogRecord) -> None:
        _apply_pending()
        for handler in logging.getLogger().handlers:
            if handler is not self and record.levelno >= handler.level:
                handler.handle(record)


def _configure(level: str, json: bool, log_file: Path | None, rotate: str, keep: int) -> None:
    import structlog

    numeric = logging.getLevelName(level.upper())
    common: list = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
    ]
    renderer = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=_console_traceback
        )
    )
    # JSON lines carry the traceback as the "exception" field, in the same scrubbed text.
    tracebacks: list = [structlog.processors.ExceptionRenderer(format_traceback)] if json else []

    # Libraries (websockets, urllib3, aiohttp) log through the standard library: render their
    # records like ours, so --log-json output is JSON on every line.
    def rendered_by(handler: logging.Handler, renderer: object) -> logging.Handler:
        handler.addFilter(_ScrubFilter())
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=[structlog.stdlib.add_logger_name, *common],
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *tracebacks,
                    renderer,
                ],
            )
        )
        return handler

    handlers = [rendered_by(logging.StreamHandler(sys.stderr), renderer)]
    if log_file is not None:
        file_renderer = (
            structlog.processors.JSONRenderer()
            if json
            else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=_console_traceback)
        )
        handlers.append(rendered_by(_file_handler(Path(log_file), rotate, keep), file_renderer))
    logging.basicConfig(level=numeric, handlers=handlers, force=True)
    _quiet_websockets(numeric)
    if log_file is not None:
        # Our events then go through the standard library too, so both handlers render them.
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                *common,
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(numeric),
            logger_factory=structlog.stdlib.LoggerFactory(),
            cache_logger_on_first_use=False,
        )
        return
    processors: list = [structlog.contextvars.merge_contextvars, *common, *tracebacks, renderer]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Resolve sys.stderr per logger so captured or redirected stderr is honoured.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _quiet_websockets(numeric: int) -> None:
    # websockets logs every frame at debug (thousands a second of market data); shriven's own
    # debug events are what --log-level debug is for
    logging.getLogger("websockets").setLevel(max(numeric, logging.INFO))


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    import structlog

    return structlog.PrintLogger(sys.stderr)


class _LazyLogger:
    """structlog's logger for ``name``, looked up at the first log call: importing structlog
    imports asyncio (for its async log methods), which the pure rooms that log (wal, replay,
    the protocol parsers) must not pull in just by being imported."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: object = None

    def __getattr__(self, method: str) -> Any:
        logger = self._logger
        if logger is None:
            _apply_pending()
            import structlog

            logger = self._logger = structlog.get_logger(self._name)
        return getattr(logger, method)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    return cast("structlog.typing.FilteringBoundLogger", _LazyLogger(name))
