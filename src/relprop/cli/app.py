"""The ``relprop`` command: one Typer application that each command module adds itself to."""

import click
import typer
from typer.core import TyperGroup


class _Commands(TyperGroup):
    """Typer's group of commands, whose options show their value by name (``--model MODEL``, as argparse
    does) rather than by Python type (``--model <str>``)."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        for param in command.params if command is not None else ():
            if param.metavar is None and not getattr(param, "is_flag", False):
                param.metavar = param.name.upper()
        return command


app = typer.Typer(
    name="relprop",
    help="Explain, measure and audit machine-learning models with Layer-wise Relevance Propagation.",
    cls=_Commands,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain text: "pip install relprop[ray]" is not markup
)


EXPECTED_ERRORS = (ValueError, TypeError, OSError, ImportError)
"""Errors that a command reports in one line (bad input); anything else is a bug and keeps its traceback."""


def fail(error: BaseException) -> typer.Exit:
    """Print ``error`` as one line on stderr; the command raises the returned exit (code 1)."""
    message = " ".join(str(error).split()) or type(error).__name__
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


@app.callback()
def main() -> None:
    """relprop: Layer-wise Relevance Propagation and its family."""
