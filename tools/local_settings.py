"""The app settings the local tools honour, read the way the app reads them.

``tools.simulate`` and ``tools.arena`` (and ``tools.explore``, which runs both) build an embedded world: fakes on
loopback, a memory or local Cosmos store, the simulation's secrets. What they take from the developer's
configuration is the loop guard's tunables, every ``LOOP_*`` app setting of ``shared.settings.Settings``, from
the same place ``func start`` would: the process environment over ``local.settings.json``'s ``Values``
(``shared.settings.app_environment``; an empty value counts as unset, as in Core Tools). So
``LOOP_MAX_AUTOMATED_DEPTH=2 make arena`` runs the arena with depth 2. Everything else stays the world's own: a
developer's ``GITHUB_API_URL`` or ``AZURE_OPENAI_ENDPOINT`` must not send a simulation to the real services.

A value the app would refuse is refused here too, by the same validation (``shared.settings.load_settings``),
and the tool exits 2 naming the setting.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from shared.errors import ConfigurationError
from shared.settings import LOCAL_SETTINGS_FILE, app_environment, load_settings, setting_names

#: The prefix of the settings a local tool takes from the developer's configuration.
HONOURED_PREFIX = "LOOP_"

_announced: set[tuple[tuple[str, str], ...]] = set()


def honoured_settings(environ: Mapping[str, str] | None = None,
                      local_settings: str | Path | None = LOCAL_SETTINGS_FILE) -> dict[str, str]:
    """The ``LOOP_*`` settings set in the environment or ``local.settings.json`` (non-empty values only),
    validated as the app validates them; ``ConfigurationError`` naming the first bad one."""
    names = {name for name in setting_names() if name.startswith(HONOURED_PREFIX)}
    values = app_environment(environ, local_settings)
    chosen = {name: value for name, value in sorted(values.items()) if name in names and value.strip()}
    load_settings(chosen)
    return chosen


def tool_settings(tool: str, environ: Mapping[str, str] | None = None,
                  local_settings: str | Path | None = LOCAL_SETTINGS_FILE) -> dict[str, str]:
    """``honoured_settings`` for a command-line tool: says once on stderr which settings it runs with (stdout
    keeps its format), and exits 2 with the setting's name when a value is invalid."""
    try:
        chosen = honoured_settings(environ, local_settings)
    except ConfigurationError as exc:
        print(f"{tool}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    key = tuple(chosen.items())
    if chosen and key not in _announced:
        _announced.add(key)
        shown = " ".join(f"{name}={value}" for name, value in chosen.items())
        print(f"{tool}: loop guard settings from the environment / {LOCAL_SETTINGS_FILE}: {shown}", file=sys.stderr)
    return chosen
