"""The typer application and the options every command shares. Commands live in sibling modules."""

from __future__ import annotations

import contextlib
import errno
import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from shriven.cli.tree import TOP, LazyGroup
from shriven.logging import configure_logging

if TYPE_CHECKING:
    from shriven.config import Settings


def usage_error_line(exc: ClickException) -> str:
    """A click usage error (bad option value, unknown option, missing argument) as the one line
    our own errors print, naming the command's --help."""
    text = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    hint = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
    return f"shriven: error: {text}{hint}"


class _Group(LazyGroup):
    """The top-level group: click's usage errors print as one line (``shriven: error: ...``,
    exit status 2) like every other error, instead of a usage block. Each command's module is
    imported when the command is named (shriven.cli.tree)."""

    table = TOP
    source = "shriven.cli.app:app"

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except NoArgsIsHelpError as exc:
            exc.show()  # `shriven` alone: the help text
            sys.exit(exc.exit_code)
        except ClickException as exc:
            print(usage_error_line(exc), file=sys.stderr)
            sys.exit(exc.exit_code)
        except typer.Abort:
            print("shriven: aborted", file=sys.stderr)
            sys.exit(1)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            # `shriven replay | head`: the reader left; exit without a traceback on flush
            sys.stdout = _Quiet(sys.stdout)  # type: ignore[assignment]
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


class _Quiet:
    """stdout after a broken pipe: the interpreter's final flush must not raise again."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


app = typer.Typer(
    cls=_Group,
    name="shriven",
    help="Record Zerodha Kite and Binance market data to a crash-safe WAL and replay it exactly.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@functools.cache
def settings() -> Settings:
    """Settings loaded once per process (environment, .env, config/shriven.toml). Imported here,
    not at the top: pydantic-settings is most of a read command's start-up, and `replay book`
    with --data-dir and --tz never needs it."""
    from shriven.config import load_settings

    return load_settings()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # 0.1 s: only for --version

    try:
        return version("shriven")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        print(f"shriven {_version()}")
        raise typer.Exit()


@app.callback()
def _common(
    _show_version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=_print_version,
        help="Print the version and exit.",
    ),
    log_json: bool = typer.Option(False, "--log-json", help="Log JSON lines instead of text."),
    log_level: str = typer.Option(
        "info", "--log-level", help="debug, info, warning or error.", metavar="LEVEL"
    ),
    log_file: Path | None = typer.Option(
        None,
        "--log-file",
        metavar="PATH",
        help="Also write the log to PATH (JSON lines with --log-json), rotated by --log-rotate.",
    ),
    log_rotate: str = typer.Option(
        "daily",
        "--log-rotate",
        metavar="WHEN",
        help="With --log-file: daily (at midnight UTC) or a size such as 100MB.",
    ),
    log_keep: int = typer.Option(
        14, "--log-keep", metavar="N", help="With --log-file: rotated files kept (default 14)."
    ),
) -> None:
    """Record Zerodha Kite and Binance market data to a crash-safe WAL and replay it exactly."""
    configure_logging(log_level, log_json, log_file, log_rotate, log_keep)
