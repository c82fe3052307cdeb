"""The ``relprop`` command: one Typer application that each command module adds itself to."""

import typer

app = typer.Typer(
    name="relprop",
    help="Explain, measure and audit machine-learning models with Layer-wise Relevance Propagation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
