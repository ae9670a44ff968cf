"""The ``rmcheck`` command line: run, validate, sweep, compare, report, serve, cache."""
from .app import main

__all__ = ["main"]
