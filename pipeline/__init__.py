"""newsmon: a streaming news monitor (feeds in, alerts out)."""

__version__ = "0.1.0"
