"""The ``relprop`` command: one Typer application that each command module adds itself to."""

import ast
import functools
import importlib
import importlib.util

import click
import typer
from typer.core import TyperGroup

#: The module that defines each command, by command name.
_MODULES: dict[str, str] = {}


def command_module(module: str, *commands: str) -> None:
    """Declare the commands that ``module`` defines (with ``@app.command()``).

    ``relprop --help`` lists the commands from these declarations without importing their modules (which
    import torch, seconds and hundreds of megabytes), each with the first line of its function's docstring
    (:func:`summary`); running a command, or asking for its help, imports every declared module, so that
    the names they register (data sets, models) are known to all commands.
    """
    for name in commands:
        _MODULES[name] = module


@functools.cache
def summary(command: str) -> str:
    """The first line of the docstring of ``command``'s function (``explain-text``: ``explain_text``),
    read from its module's source without importing it."""
    source = importlib.util.find_spec(_MODULES[command]).origin
    with open(source, encoding="utf-8") as file:
        tree = ast.parse(file.read())
    function = command.replace("-", "_")
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return (ast.get_docstring(node) or "").split("\n")[0]
    raise LookupError(f"{_MODULES[command]} declares the command {command} but defines no {function}()")


class _Commands(TyperGroup):
    """Typer's group of commands, which imports the commands' modules only when one runs, and whose
    options show their value by name (``--model MODEL``, as argparse does) rather than by Python type
    (``--model <str>``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(dict.fromkeys([*_MODULES, *super().list_commands(ctx)]))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _MODULES and not set(_MODULES) <= set(self.commands):
            for module in dict.fromkeys(_MODULES.values()):
                importlib.import_module(module)
            self.commands.update(typer.main.get_command(app).commands)
        command = super().get_command(ctx, name)
        for param in command.params if command is not None else ():
            if param.metavar is None and not getattr(param, "is_flag", False):
                param.metavar = param.name.upper()
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [
            (name, summary(name) if name in _MODULES else self.get_command(ctx, name).get_short_help_str())
            for name in self.list_commands(ctx)
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


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
