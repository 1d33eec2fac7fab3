"""Sources of memory: a Volatility layer, a live process, a carved file. See source.py."""
