"""Command-line interface. Each command lives in its own module and registers itself on ``app``."""

from relprop.cli import attribute, evaluate, explain  # noqa: F401 - importing a command module registers it
from relprop.cli.app import app

__all__ = ["app"]
