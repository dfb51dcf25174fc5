"""The bus: what a recorder made durable, published to NATS JetStream (``run --publish``), and the
consumers of it: ``sink`` (an archive that is a shriven store per recorder) and ``tail``.
docs/bus.md has the topology, subjects, payload and what exactly-once covers."""
