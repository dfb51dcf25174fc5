"""The recorder's runtime: bounded queue, writer (WAL + books + snapshots), metrics, health server,
monitor and graceful shutdown. ``Pipeline`` in daemon.py ties them together."""
