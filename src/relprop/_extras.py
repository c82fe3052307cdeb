"""How to install relprop's optional extras, said the same way wherever one is missing."""

from __future__ import annotations


def install_hint(extra: str) -> str:
    """The commands that install the optional extra ``extra``, from PyPI and in a checkout of relprop.

    The names are quoted, so that shells that expand brackets (zsh) pass them as they are.
    """
    return f'pip install "relprop[{extra}]" (in a checkout of relprop: pip install -e ".[{extra}]")'
