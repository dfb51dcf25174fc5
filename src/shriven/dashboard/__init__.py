"""``shriven monitor``: a terminal dashboard over one or more recorders' /health and /metrics."""
