"""`shriven monitor [URL ...]`: the terminal dashboard of running recorders."""

from __future__ import annotations

import typer

from shriven.cli.app import app, settings


@app.command("monitor")
def monitor(
    urls: list[str] | None = typer.Argument(
        None,
        help="Recorders' base URLs (http://HOST:PORT). Default: this machine's recorder at "
        "SHRIVEN_HEALTH_HOST:SHRIVEN_HEALTH_PORT.",
        metavar="URL",
    ),
) -> None:
    """Watch recorders' /health and /metrics, refreshed every second: feeds, queue, WAL, books,
    disk, problems and the Kite universe. Keys: q quits, tab switches recorder."""
    if not urls:
        s = settings()
        urls = [f"http://{s.health_host}:{s.health_port}"]
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise typer.BadParameter(
                f"{url!r} is not a URL: give http://HOST:PORT", param_hint="URL"
            )
    from shriven.dashboard.app import run_monitor

    run_monitor([u.removesuffix("/health").rstrip("/") for u in urls])
