"""hookstream: webhook delivery pipeline."""

__version__ = "0.1.0"
