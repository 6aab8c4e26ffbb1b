"""The app's indexed functions, computed once.

``FunctionApp.get_functions()`` may be called once per app: a second call fails its unique-name check, as
the worker only ever indexes once. Tests and tools share this cached result.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def memory_services() -> Iterator[Any]:
    """Install process-wide services over an empty memory store for the duration (the engine's lifecycle
    activities save and read the task there), then forget them; services already installed are kept."""
    from shared import services as registry
    from shared.settings import load_settings
    from shared.store.memory import MemoryStore

    if registry._services is not None:
        yield registry._services
        return
    services = registry.Services(settings=load_settings({"LINEAGE_STORE": "memory"}), store=MemoryStore())
    registry.set_services(services)
    try:
        yield services
    finally:
        registry.set_services(None)
