"""Command-line interface. Each command lives in its own module and registers itself on ``app``."""

from relprop.cli import attribute, demo, evaluate, explain, spray, text  # noqa: F401 - importing registers a command
from relprop.cli.app import app

__all__ = ["app"]
