"""Finding 4: a lifecycle notification cannot point Reynolds' Graph subscriptions at a resource of its choosing.

Whoever knows ``clientState`` can POST a ``subscriptionRemoved`` naming any chat; Reynolds recreates only the
resources of ``GRAPH_SUBSCRIPTION_RESOURCES``. Through the registered function, the subscription orchestration
(real replay) and msgraph-sdk against the fake Graph.
"""

from __future__ import annotations

import json

import pytest

from shared.store.base import Query
from tools.world import SIMULATE_GRAPH_CLIENT_STATE, build_world

FOREIGN = [
    "chats('19:secret-board@thread.v2')/messages",
    "/chats/19:ceo-chat@thread.v2/messages",
    "teams('t-finance')/channels('19:payroll@thread.tacv2')/messages",
    "users/ceo@contoso.com/messages",
    "teams/getAllMessages/../../chats/getAllMessages?x",
    "",
]


def _lifecycle(resource: str, event: str = "subscriptionRemoved", sub: str = "sub-forged") -> bytes:
    return json.dumps({"value": [{"subscriptionId": sub, "clientState": SIMULATE_GRAPH_CLIENT_STATE,
                                  "lifecycleEvent": event, "resource": resource, "tenantId": "t"}]}).encode()


@pytest.mark.parametrize("resource", FOREIGN)
@pytest.mark.parametrize("event", ["subscriptionRemoved", "reauthorizationRequired", "missed"])
async def test_lifecycle_for_an_unconfigured_resource_subscribes_to_nothing(resource: str, event: str) -> None:
    with build_world() as world:
        await world.ensure_subscriptions()
        before = {sub["id"]: sub["resource"] for sub in world.graph.subscriptions.values()}
        status, _body, _ = await world.post_graph(_lifecycle(resource, event))
        assert status == 202
        after = {sub["id"]: sub["resource"] for sub in world.graph.subscriptions.values()}
        assert set(after.values()) == set(before.values())
        assert not any("secret" in r or "ceo" in r or "payroll" in r for r in after.values())
        assert world.store.query(Query(equals={"kind": "graph-missed"})) == []
        assert not [r for r in world.graph.requests if r.method == "POST" and "reauthorize" in r.path]


async def test_lifecycle_for_a_configured_resource_still_recreates_it() -> None:
    with build_world() as world:
        await world.ensure_subscriptions()
        sub = next(s for s in world.graph.subscriptions.values() if "chats" in s["resource"])
        payload = world.graph.lifecycle_notification(sub["id"], "subscriptionRemoved")
        status, _body, _ = await world.post_graph(json.dumps(payload).encode())
        assert status == 202
        resources = sorted(s["resource"] for s in world.graph.subscriptions.values())
        assert any("chats" in r for r in resources)
        assert sub["id"] not in world.graph.subscriptions
