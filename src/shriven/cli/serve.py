"""`shriven serve`: serve a store over the venues' protocols and the JSON query API."""

from __future__ import annotations

from pathlib import Path

import typer

from shriven.cli.app import app, settings


@app.command("serve")
def serve_command(
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        metavar="STORE",
        help="The store to serve (default SHRIVEN_PIPELINE__DATA_DIR).",
    ),
    port: int | None = typer.Option(
        None,
        "--port",
        min=0,
        max=65535,
        metavar="PORT",
        help="Port to listen on (default SHRIVEN_SERVE__PORT, 8788; 0 picks a free one).",
    ),
    host: str | None = typer.Option(
        None,
        "--host",
        metavar="ADDRESS",
        help="Address to bind (default SHRIVEN_SERVE__HOST, 127.0.0.1); any other than "
        "loopback needs SHRIVEN_SERVE__API_KEY.",
    ),
    duration: float | None = typer.Option(
        None, "--duration", metavar="SECONDS", help="Stop after this many seconds."
    ),
) -> None:
    """Serve a store: Kite ticker and Binance stream history over their own protocols, and the
    /v1 query API (records, book, instruments, stats). Stops on Ctrl-C or SIGTERM."""
    if duration is not None and not duration > 0:
        raise typer.BadParameter("must be more than 0", param_hint="--duration")
    from shriven.app.serve import serve

    s = settings()
    store = data_dir if data_dir is not None else Path(s.pipeline.data_dir)
    code = serve(s, store, host=host, port=port, duration=duration)
    if code:
        raise typer.Exit(code)
