"""Command-line interface. Each command lives in its own module and registers itself on ``app``."""

import relprop.cli.explain  # noqa: F401 - registers its command
from relprop.cli import attribute  # noqa: F401 - registers its commands
from relprop.cli.app import app

__all__ = ["app"]
