"""shriven: a market-data recorder for Zerodha Kite and Binance."""

__version__ = "0.1.0"
