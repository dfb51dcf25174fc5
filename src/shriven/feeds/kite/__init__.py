"""Zerodha Kite: login and token cache, instruments, ticker protocol and websocket adapter."""
