"""``"model": [REPLY, …]`` for a simulate item or an arena scenario: the fake model answers its calls in order.

One call per item or scenario (issue 21's interface)::

    with scripted_model(item.get("model"), world.services) as model:
        line = await run_item(world, item)
    line.update(model_outcome(model))

- Without ``"model"`` nothing changes (``None`` is yielded; the offline planner runs as today).
- With it, a fresh :class:`~tools.fakes.openai.FakeOpenAI` on loopback is installed for the item only
  (``AZURE_OPENAI_ENDPOINT`` in the services' settings, and the model client for that endpoint), so replies left
  unused never carry over to the next item; the previous settings come back afterwards.
- A call beyond the script gets a 400 (code ``script_exhausted``: the SDK does not retry it, the app sees a
  permanent model error) and :func:`model_outcome` adds ``"error"`` to the line: "the item asked the model for
  reply 4 but its script has 3". Never a silent default.
- A malformed script raises :class:`~tools.fakes.openai.ScriptError` before anything runs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tools.fakes.openai import FakeOpenAI, Reply, exhausted_reply, replies_from_script


class ItemInputError(ValueError):
    """An item's ``"model"``, ``"repo_files"``, ``"pulls"`` or ``"runs"`` is malformed (nothing was run)."""


@dataclass
class ScriptedModel:
    """The fake model of one item: how many replies were scripted and how many calls went beyond them."""

    fake: FakeOpenAI
    scripted: int
    beyond: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _overflow(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.beyond += 1
            asked = self.scripted + self.beyond
        return exhausted_reply(asked, self.scripted)

    @property
    def used(self) -> int:
        """Scripted replies consumed."""
        return self.scripted - self.fake.pending

    def error(self) -> str | None:
        """The clear error when the item asked for more replies than scripted, else None."""
        if not self.beyond:
            return None
        return (f"the item asked the model for reply {self.scripted + 1} but its script has {self.scripted} "
                f"({self.beyond} call(s) beyond the script)")


@contextlib.contextmanager
def scripted_model(script: Any, services: Any) -> Iterator[ScriptedModel | None]:
    """Install the fake model answering ``script`` for the duration of the block (see the module docstring).

    ``services`` is the world's ``shared.services.Services``; its ``settings`` are swapped for a copy with
    ``AZURE_OPENAI_ENDPOINT`` set and restored on exit.
    """
    if script is None:
        yield None
        return
    from shared.ai.client import make_openai_client
    from shared.settings import override_settings
    from shared.work.task_service import set_model_client

    replies = replies_from_script(script)
    previous = services.settings
    with FakeOpenAI(model=previous.openai_deployment) as fake:
        model = ScriptedModel(fake, len(replies))
        fake.script(*replies)
        fake.responder = model._overflow
        settings = previous.model_copy(update={"openai_endpoint": fake.endpoint})
        set_model_client(fake.endpoint, make_openai_client(settings, api_key="scripted-model"))
        services.settings = settings
        override_settings(settings)
        try:
            yield model
        finally:
            services.settings = previous
            override_settings(previous)
            set_model_client(fake.endpoint, None)


def model_outcome(model: ScriptedModel | None) -> dict[str, Any]:
    """What a result line gains: nothing without a script; ``model_replies_used`` with one, and ``error`` when the
    script was exceeded (the caller then fails the item: an arena result sets ``passed`` to False)."""
    if model is None:
        return {}
    line: dict[str, Any] = {"model_replies_used": model.used}
    error = model.error()
    if error is not None:
        line["error"] = error
    return line


#: The keys of a ``"writes"`` entry as issue 21 specifies them (``status`` is an extension: what GitHub answered).
WRITE_KEYS = ("platform", "method", "path", "kind", "target", "sha256", "status")


def seed_item(world: Any, item: dict[str, Any]) -> None:
    """Check an item's (or scenario's) ``"model"`` script and seed its ``"repo_files"``, ``"pulls"`` and ``"runs"``
    on the world's fake GitHub; anything malformed raises :class:`ItemInputError` before anything runs."""
    from tools.fakes.github import seeding
    from tools.fakes.github.writes_log import seed_repo_files

    try:  # a malformed script or seed fails before anything runs, as the item's own error
        if item.get("model") is not None:
            replies_from_script(item["model"])
        seed_repo_files(world.github, item.get("repo_files"))
        if item.get("pulls") or item.get("runs"):  # issue 23's seeding: diffs against repo_files' base branch
            seeding.seed(world.github, pulls=item.get("pulls"), runs=item.get("runs"))
    except ValueError as exc:
        raise ItemInputError(str(exc)) from exc


def finish_line(line: dict[str, Any], writes: list[dict[str, Any]], model: ScriptedModel | None) -> dict[str, Any]:
    """``line`` with its ``"writes"`` and the model's outcome (``"error"`` when the script was exceeded)."""
    line["writes"] = [{key: entry[key] for key in WRITE_KEYS} for entry in writes]
    line.update(model_outcome(model))
    return line


async def run_with_interfaces(world: Any, item: dict[str, Any], writes: list[dict[str, Any]],
                              run: Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """Run one simulate item or arena scenario with issue 21's interfaces, in one call.

    Serves the item's ``"repo_files"`` through the fake GitHub's contents API, answers its model calls from its
    ``"model"`` script, runs ``run(world, item)``, and adds to the line ``"writes"`` (the write requests made
    during the run: ``writes`` is the list :func:`tools.fakes.github.writes_log.record_writes` returned once for
    the world), ``model_replies_used`` and, when the script was exceeded, ``"error"``. A malformed ``"model"``
    or ``"repo_files"`` raises :class:`ItemInputError` before anything runs.
    """
    seed_item(world, item)
    before = len(writes)
    with scripted_model(item.get("model"), world.services) as model:
        line = await run(world, item)
    return finish_line(line, writes[before:], model)
