"""The ``relprop`` command: one Typer application that each command module adds itself to."""

import typer

app = typer.Typer(
    name="relprop",
    help="Explain, measure and audit machine-learning models with Layer-wise Relevance Propagation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """relprop: Layer-wise Relevance Propagation and its family."""
