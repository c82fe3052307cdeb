"""Command-line interface. Each command lives in its own module, registers itself on ``app`` with
``@app.command()``, and is declared below, one line per module: its commands and their summaries
(:func:`relprop.cli.app.command_module`), which ``relprop --help`` lists without importing the module."""

from relprop.cli.app import app, command_module

command_module(
    "relprop.cli.attribute",
    attribute="Explain every sample of a data set into a resumable HDF5 store.",
    merge="Join the shard stores of one run into one store.",
)
command_module(
    "relprop.cli.demo", demo="Plant a tag, train a CNN that cheats with it, and find it with LRP and SpRAy."
)
command_module(
    "relprop.cli.explain", explain="Explain a classifier on photos: top classes, heatmaps and overlays."
)
command_module(
    "relprop.cli.evaluate", evaluate="Region perturbation: each method's AOPC over photos, and the curves."
)
command_module("relprop.cli.spray", spray="SpRAy of one class of a store, as an HTML report.")
command_module(
    "relprop.cli.text", explain_text="Explain a text model word by word, or what a language model wrote."
)

__all__ = ["app"]
