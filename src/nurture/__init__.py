"""Nurture: open-source marketing automation server."""

__version__ = "0.1.0"
