"""Names that changed: an old keyword still works, with a warning that names the new one."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["renamed_keyword"]

F = TypeVar("F", bound=Callable[..., Any])


def renamed_keyword(old: str, new: str) -> Callable[[F], F]:
    """Let the decorated function take its argument ``new`` under its former name ``old`` too, with a
    ``DeprecationWarning``; both at once is a ``TypeError``."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if old in kwargs:
                name = function.__qualname__.removesuffix(".__init__")
                if new in kwargs:
                    raise TypeError(f"{name}() got both {new!r} and its former name {old!r}")
                warnings.warn(f"{name}(): {old!r} is now called {new!r}", DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
