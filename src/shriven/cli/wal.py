"""`shriven wal ...`: inspect and verify WAL stores."""

from __future__ import annotations

import typer

from shriven.cli.app import app

wal_app = typer.Typer(help="Inspect and verify WAL stores.", no_args_is_help=True)
app.add_typer(wal_app, name="wal")
