"""The typer application and the options every command shares. Commands live in sibling modules."""

from __future__ import annotations

import functools

import typer

from shriven.config import Settings, load_settings
from shriven.logging import configure_logging

app = typer.Typer(
    name="shriven",
    help="Record Zerodha Kite and Binance market data to a crash-safe WAL and replay it exactly.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@functools.cache
def settings() -> Settings:
    """Settings loaded once per process (environment, .env, config/shriven.toml)."""
    return load_settings()


@app.callback()
def _common(
    log_json: bool = typer.Option(False, "--log-json", help="Log JSON lines instead of text."),
    log_level: str = typer.Option(
        "info", "--log-level", help="debug, info, warning or error.", metavar="LEVEL"
    ),
) -> None:
    """Record Zerodha Kite and Binance market data to a crash-safe WAL and replay it exactly."""
    configure_logging(log_level, log_json)
