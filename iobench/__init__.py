"""iobench: a comparative benchmark of I/O models for socket servers."""

__version__ = "0.1.0"
