"""Command-line interface. Each command lives in its own module and registers itself on ``app``."""

from relprop.cli.app import app

__all__ = ["app"]
