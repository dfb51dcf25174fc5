"""Serving recorded and live data over the venues' own protocols (Kite's ticker, Binance's
streams and depth) and a JSON query API over the store; see docs/serve.md."""

from shriven.serve.options import ServeOptions
from shriven.serve.server import Server

__all__ = ["ServeOptions", "Server"]
