"""The command line's help: fast (no torch for the list of commands), plain text, options named."""

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import relprop
from relprop.cli import app
from relprop.cli.app import _MODULES, summary

runner = CliRunner()


def test_the_list_of_commands_imports_no_command_and_no_torch():
    watched = ("torch", "relprop.cli.explain", "relprop.cli.attribute")
    probe = f"import atexit, sys; atexit.register(lambda: print(sorted(set(sys.modules) & set({watched}))))"
    code = f"{probe}; from relprop.cli import app; app()"
    source = str(Path(relprop.__file__).parents[1])
    done = subprocess.run(
        [sys.executable, "-c", code, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": source},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    for name in _MODULES:
        assert f"  {name} " in done.stdout and summary(name).split()[0] in done.stdout


def test_every_declared_command_is_defined_by_its_module():
    result = runner.invoke(app, ["merge", "--help"])  # running or helping one command imports them all
    assert result.exit_code == 0, result.output
    from typer.main import get_command

    commands = get_command(app).commands
    assert set(_MODULES) == set(commands)
    for name, module in _MODULES.items():
        assert commands[name].callback.__module__ == module
        # the listed summary is the command's own docstring's first line, written once
        assert summary(name) and commands[name].callback.__doc__.splitlines()[0] == summary(name)


def test_help_is_plain_text_with_options_named():
    result = runner.invoke(app, ["attribute", "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert 'pip install "relprop[ray]"' in text  # not eaten as markup
    assert "--model MODEL" in text and "--batch-size BATCH_SIZE" in text and "--ray / --no-ray" in text
    assert "--model <str>" not in text
