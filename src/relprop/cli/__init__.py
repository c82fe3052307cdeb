"""Command-line interface. Each command lives in its own module, registers itself on ``app`` with
``@app.command()``, and is declared below with its module (:func:`relprop.cli.app.command_module`), so that
``relprop --help`` lists it, with the first line of its docstring, without importing the module."""

from relprop.cli.app import app, command_module

command_module("relprop.cli.attribute", "attribute", "merge")
command_module("relprop.cli.concepts", "concepts")
command_module("relprop.cli.demo", "demo")
command_module("relprop.cli.explain", "explain")
command_module("relprop.cli.evaluate", "evaluate")
command_module("relprop.cli.prune", "prune")
command_module("relprop.cli.spray", "spray")
command_module("relprop.cli.text", "explain-text")
command_module("relprop.cli.virelay", "virelay")

__all__ = ["app"]
