"""Feed adapters: one package per venue behind the small interface in :mod:`shriven.feeds.base`."""
