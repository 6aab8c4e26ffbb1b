"""Finding 6: ids are hashed into instance ids without collisions and within Durable's length limit.

``order/1`` and ``order-1`` (Service Bus), ``1:x`` and ``1-x`` (Teams) used to map to one instance: the second
event was "accepted" and never ran. Over-long Teams or Graph ids answered 500.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage

from shared.loop.envelope import Actor, EventEnvelope, Platform
from shared.loop.lineage import MAX_INSTANCE_ID_CHARS, instance_id_for
from shared.names import subtask_instance_id
from shared.work.reply import servicebus_event
from tools.world import SIMULATE_GRAPH_CLIENT_STATE, build_world

# What the Azure Storage backend refuses in an instance id (partition and row keys): / \ ? # and control chars.
_FORBIDDEN = re.compile(r"[/\\?#\x00-\x1f\x7f]")
PAIRS = [("order/1", "order-1"), ("1:x", "1-x"), ("a b", "a-b"), ("x#1", "x-1"), ("é", "-"), ("a\\b", "a/b"),
         ("servicebus:order/1", "servicebus:order-1"), ("teams:1:x", "teams:1-x"), ("t" * 150, "t" * 151),
         ("t" * 100, "t" * 101), ("a::b", "a--b")]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_distinct_ids_never_share_an_instance(first: str, second: str) -> None:
    a, b = instance_id_for(first), instance_id_for(second)
    assert a != b
    for value in (a, b):
        assert len(value) <= MAX_INSTANCE_ID_CHARS
        assert not _FORBIDDEN.search(value)


def test_a_derived_id_never_equals_a_plain_or_subtask_id() -> None:
    ids = ["plain-id", "teams:1", "order/1", "x" * 300, "a:b:c"]
    derived = {instance_id_for(i) for i in ids}
    subtasks = {subtask_instance_id(instance_id_for(i), s) for i, s in itertools.product(ids, ["s1", "0" * 36])}
    assert len(derived) == len(ids)
    assert not derived & subtasks
    assert instance_id_for("plain-id") == "plain-id"


def test_long_service_bus_message_ids_sharing_a_prefix_stay_apart() -> None:
    base = EventEnvelope(id="ce-1", source="/s", type="t", time="2026-01-01T00:00:00Z",
                         platform=Platform.SERVICEBUS, event="t", actor=Actor())
    a = servicebus_event(base, "m" * 250 + "1")
    b = servicebus_event(base, "m" * 250 + "2")
    assert a.id != b.id
    assert max(len(a.id), len(b.id)) <= 200


def _sb(message_id: str) -> ServiceBusMessage:
    event = {"specversion": "1.0", "id": f"ce-{message_id}", "source": "/shop/orders", "type": "com.shop.note",
             "time": "2026-01-01T00:01:00Z", "data": {"text": f"Order note {message_id}"}, "actorlogin": "ops",
             "actorkind": "human"}
    return ServiceBusMessage(json.dumps(event).encode(), message_id=message_id,
                             content_type="application/cloudevents+json")


async def test_service_bus_order_slash_1_and_order_dash_1_both_run() -> None:
    with build_world() as world:
        for message_id in ("order/1", "order-1"):
            settlement = await world.deliver_servicebus(_sb(message_id))
            assert settlement.outcome == "completed"
        assert world.client.starts == 2
        assert len({instance for _name, instance, _input in world.client.start_log}) == 2


def _activity(activity_id: str, text: str = "please look at the build") -> dict[str, Any]:
    return {"type": "message", "id": activity_id, "timestamp": "2026-01-01T00:00:00Z",
            "from": {"id": "29:ada", "name": "Ada", "aadObjectId": "aad-ada"},
            "conversation": {"id": "19:chat@thread.v2", "conversationType": "groupChat", "tenantId": "t"},
            "text": f"<at>Reynolds</at> {text}"}


async def test_teams_1_colon_x_and_1_dash_x_both_run() -> None:
    with build_world() as world:
        answers = []
        for activity_id in ("1:x", "1-x"):
            status, _body, headers = await world.post_teams({"Authorization": "auto"},
                                                            json.dumps(_activity(activity_id)).encode())
            answers.append((status, headers.get("X-Reynolds-Verdict"), headers.get("X-Reynolds-Instance-Id")))
        assert [a[:2] for a in answers] == [(200, "accepted"), (200, "accepted")]
        assert answers[0][2] != answers[1][2]
        assert world.client.starts == 2


async def test_an_over_long_teams_activity_id_is_400_not_500() -> None:
    with build_world() as world:
        status, answer, _ = await world.post_teams({"Authorization": "auto"},
                                                   json.dumps(_activity("9" * 400)).encode())
        assert status == 400
        assert answer["verdict"] == "rejected"
        assert world.client.starts == 0


async def test_an_over_long_graph_message_id_is_ignored_not_500() -> None:
    with build_world() as world:
        resource = f"chats('19:chat@thread.v2')/messages('{'9' * 400}')"
        body = {"value": [{"subscriptionId": "s" * 30, "clientState": SIMULATE_GRAPH_CLIENT_STATE,
                           "changeType": "created", "resource": resource, "tenantId": "t"}]}
        status, raw, _ = await world.post_graph(json.dumps(body).encode())
        assert status == 202
        assert json.loads(raw)["ignored"] == 1
        assert world.client.starts == 0
