"""Finding 7: a person quoting Reynolds' Teams answer *with its hidden marker* is not taken for Reynolds.

The marker only finds Reynolds' answer while that answer is in flight (its message id not yet in the ledger);
once the ledger knows Reynolds' message id, another message carrying the same marker is a copy.
"""

from __future__ import annotations

import json

from shared.loop.lineage import instance_id_for
from tools.world import build_world

TEAM, CHANNEL = "team-0001", "19:chan@thread.skype"


async def test_a_person_pasting_reynolds_answer_with_its_marker_is_a_person() -> None:
    with build_world() as world:
        await world.ensure_subscriptions()
        world.graph.post_as_user("<p>The importer crashes with an error</p>", team=TEAM, channel=CHANNEL)
        status, _body, _ = await world.post_graph(json.dumps(world.graph.outbox.pop(0)).encode())
        assert status == 202
        (posted,) = world.teams_writes
        await world.post_graph(json.dumps(world.graph.outbox.pop(0)).encode())  # Reynolds' own: self
        content = posted["body"]["content"]
        assert "<!--" in content  # the hidden lineage marker
        copy = world.graph.post_as_user(f"<blockquote>{content}</blockquote><p>Is this right? The importer "
                                        "still fails with an error after the fix</p>", team=TEAM, channel=CHANNEL)
        await world.post_graph(json.dumps(world.graph.outbox.pop(0)).encode())
        output = world.client.run_of(instance_id_for(f"teams:{copy['id']}")).output
        assert output["verdict"] != "self", output
        event = world.services.lineage.get_event(f"teams:{copy['id']}")
        assert event is not None
        assert event["actor"]["kind"] == "human"
