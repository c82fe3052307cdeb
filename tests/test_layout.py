"""The command line sits on top of the library: benchmarks and examples import nothing from relprop.cli."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "examples").glob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    """Every module that ``path`` imports, at any depth of its code (``from a.b import c`` gives ``a.b``)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def test_the_checker_sees_imports_inside_functions(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("def f():\n    from relprop import cli\n    import relprop.cli.explain\n")
    assert {"relprop.cli", "relprop.cli.explain"} <= _imported_modules(script)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_benchmarks_and_examples_use_only_the_library(path):
    from_cli = [m for m in _imported_modules(path) if m == "relprop.cli" or m.startswith("relprop.cli.")]
    assert not from_cli, f"{path.name} imports {from_cli}: move what it needs into the library"
