"""`shriven wal prune | archive | restore`: retention and long-term storage of a store."""

from __future__ import annotations

from pathlib import Path

import typer

from shriven.cli.app import settings
from shriven.cli.wal import wal_app
from shriven.errors import ArchiveError


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


@wal_app.command("archive")
def archive(
    store: Path = typer.Argument(..., help="The store (data directory).", metavar="STORE"),
    to: str = typer.Argument(
        ..., help="s3://BUCKET/PREFIX (SHRIVEN_S3_* settings) or a directory.", metavar="WHERE"
    ),
    keep_days: float | None = typer.Option(
        None, "--keep-days", metavar="N", help="Archive only sealed segments older than N days."
    ),
    keep_size: str | None = typer.Option(
        None,
        "--keep-size",
        metavar="SIZE",
        help="Archive sealed segments from the front until the store fits SIZE.",
    ),
    level: int = typer.Option(19, "--level", min=1, max=22, help="zstd level (default 19)."),
    dictionary: bool = typer.Option(
        False, "--dictionary", help="Train a zstd dictionary on the segments and use it."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be archived."),
) -> None:
    """Recompress sealed segments with zstd, verify the copy, upload it, verify its checksum
    there, and only then remove the local segment. Without --keep-days/--keep-size every sealed
    segment goes. A failed upload keeps the local segment and exits 1."""
    from shriven.app.retention import archive_store, s3_credentials
    from shriven.sizes import parse_size

    size = None if keep_size is None else parse_size(keep_size)
    run = archive_store(
        store,
        to,
        s3_credentials(settings()),
        keep_days=keep_days,
        keep_bytes=size,
        level=level,
        dictionary=dictionary,
        dry_run=dry_run,
        progress=lambda seg, n, m: typer.echo(
            f"archived {seg.wal}/{seg.path.name}: {_mb(n)} -> {_mb(m)} ({n / max(m, 1):.2f}x)"
        ),
    )
    if run.result is None:
        for seg in run.planned:
            typer.echo(f"would archive {seg.wal}/{seg.path.name} ({_mb(seg.bytes)})")
        typer.echo(f"would archive {len(run.planned)} segments to {to}")
        return
    r = run.result
    speed = r.original_bytes / r.seconds / 1e6 if r.seconds > 0 else 0.0
    typer.echo(
        f"archived {len(r.archived)} segments to {to}: {_mb(r.original_bytes)} -> "
        f"{_mb(r.archived_bytes)} ({r.ratio:.2f}x, {speed:.1f} MB/s)"
    )
    if r.failed:
        kept = len(run.planned) - len(r.archived)
        raise ArchiveError(f"{r.failed}; {kept} segments kept locally, nothing of them removed")


@wal_app.command("restore")
def restore(
    source: str = typer.Argument(
        ..., help="s3://BUCKET/PREFIX or a directory written by `wal archive`.", metavar="WHERE"
    ),
    store: Path = typer.Argument(..., help="The store to restore into.", metavar="STORE"),
) -> None:
    """Bring archived segments back into a readable store (checksums verified; existing
    identical segments are skipped), and rewrite its metadata.json."""
    from shriven.app.retention import restore_store, s3_credentials

    result = restore_store(source, store, s3_credentials(settings()))
    for name in result.restored:
        typer.echo(f"restored {name}")
    typer.echo(
        f"restored {len(result.restored)} segments into {store}"
        + (f" ({len(result.skipped)} files already there)" if result.skipped else "")
    )
