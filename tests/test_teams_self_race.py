"""Reynolds' own Teams message seen through Graph before the ledger recorded its id is still ``self``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.loop.lineage import EffectRecord, LineageService, instance_id_for
from tools.world import build_world

TEAM, CHANNEL = "team-0001", "19:chan@thread.skype"


async def test_a_notification_that_beats_the_ledger_is_recognised_by_its_marker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_complete = LineageService.complete_effect
    held: list[EffectRecord] = []

    def not_yet(self: LineageService, record: EffectRecord, resource_id: str, text: str) -> Any:
        if record.platform == "teams" and not held:
            held.append(record)  # the post went out; its id is not in the ledger yet
            return record
        return real_complete(self, record, resource_id, text)

    monkeypatch.setattr(LineageService, "complete_effect", not_yet)
    with build_world() as world:
        await world.ensure_subscriptions()
        world.graph.post_as_user("<p>The importer crashes with an error</p>", team=TEAM, channel=CHANNEL)
        person = world.graph.outbox.pop(0)
        status, _body, _ = await world.post_graph(json.dumps(person).encode())
        assert status == 202
        (posted,) = world.teams_writes
        assert held, "the ledger write was not held back"
        own = world.graph.outbox.pop(0)  # Graph tells Reynolds about its own message
        await world.post_graph(json.dumps(own).encode())
        output = world.client.run_of(instance_id_for(f"teams:{posted['id']}")).output
        assert output["verdict"] == "self"
        assert output["effects"] == []
        assert len(world.teams_writes) == 1
