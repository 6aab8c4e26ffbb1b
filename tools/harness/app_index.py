"""The app's indexed functions, computed once.

``FunctionApp.get_functions()`` may be called once per app: a second call fails its unique-name check, as
the worker only ever indexes once. Tests and tools share this cached result.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


@functools.cache
def functions() -> tuple[Any, ...]:
    """``function_app.app.get_functions()``, indexed once per process."""
    from function_app import app

    return tuple(app.get_functions())


def by_name(name: str) -> Any:
    """The indexed function called ``name``."""
    for function in functions():
        if function.get_function_name() == name:
            return function
    raise KeyError(f"no function named {name}")


def user_function(name: str) -> Callable[..., Any]:
    """The user code behind a registered function, unwrapping the durable client middleware (which would
    otherwise build a real client from the host's JSON binding)."""
    fn = by_name(name).get_user_function()
    return getattr(fn, "__wrapped__", fn)
