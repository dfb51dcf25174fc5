"""`shriven wal prune | archive | restore`: retention and long-term storage of a store."""

from __future__ import annotations

from pathlib import Path

import typer

from shriven.cli.wal import wal_app


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


@wal_app.command("prune")
def prune(
    store: Path = typer.Argument(..., help="The store (data directory).", metavar="STORE"),
    keep_days: float | None = typer.Option(
        None, "--keep-days", metavar="N", help="Remove sealed segments older than N days."
    ),
    keep_size: str | None = typer.Option(
        None,
        "--keep-size",
        metavar="SIZE",
        help="Remove sealed segments from the front until the store fits SIZE (e.g. 200GB).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would go; remove nothing."),
) -> None:
    """Remove sealed segments from the front of a store, never the open one.

    Safe while a recorder runs: the store lock tells whether one does; it then keeps the segment
    being written and rewrites metadata.json itself at its next snapshot."""
    if keep_days is None and keep_size is None:
        raise typer.BadParameter("give --keep-days N, --keep-size SIZE or both")
    from shriven.app.retention import prune_store
    from shriven.sizes import parse_size

    size = None if keep_size is None else parse_size(keep_size)
    result = prune_store(store, keep_days, size, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for seg in result.segments:
        typer.echo(f"{verb} {seg.wal}/{seg.path.name} ({_mb(seg.bytes)})")
    total = sum(s.bytes for s in result.segments)
    typer.echo(f"{verb} {len(result.segments)} segments, {_mb(total)}")
    if result.recorder_running and result.segments and not dry_run:
        typer.echo(
            "a recorder is running: it keeps its open segment and rewrites metadata.json at its "
            "next snapshot"
        )
