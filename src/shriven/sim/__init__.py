"""Loopback exchange simulators speaking the real Kite and Binance wire protocols."""
