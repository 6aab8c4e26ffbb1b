"""Parked requests are never forgotten (issue 20, items 6): the inbox re-parks before the host can poison, the
poison-queue reader re-decides what the host poisoned anyway, Graph-notified Teams messages are retried 24 h.

The host's rules are the WebJobs queue listener's (``tools/harness/inbox.py``: ``QueueProcessor``'s Begin and
Complete rules, ``CopyMessageToPoisonQueueAsync``); the first tests pin the harness to them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from shared import telemetry
from tools.faults.spec import FaultSpec, install
from tools.harness.inbox import InboxQueue, QueuedMessage
from tools.world import START, World, build_world
from triggers import inbox as inbox_trigger
from triggers.ingress import InboxItem

from .test_faults import REPO, answers, issue_delivery


@pytest.fixture
def world() -> Iterator[World]:
    with build_world() as w:
        w.github.add_repo(REPO)
        w.github.add_user("alice")
        yield w


# ------------------------------------------------------------------------------ the host's rules, in the harness
class _Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> Any:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def test_a_message_whose_last_invocation_never_reported_is_poisoned_unseen() -> None:
    """``BeginProcessingMessageAsync``: dequeued with ``DequeueCount > MaxDequeueCount`` → poisoned without an
    invocation. The harness before issue 20 had no such rule: it would have invoked the function an 11th time."""
    clock = _Clock()
    queue = InboxQueue(clock=clock, lost=lambda m: m.dequeue_count == 10)
    queue.put("item")
    seen: list[int] = []

    async def handler(msg: Any, **_: Any) -> None:
        seen.append(msg.dequeue_count)
        raise RuntimeError("store down")

    await queue.drain(handler, advance=clock.advance)
    assert seen == list(range(1, 10))  # dequeue 10 died with its host; dequeue 11 is never invoked
    assert (queue.host_poisoned, queue.poisoned_unseen) == (["item"], 1)


async def test_a_refused_output_write_fails_the_invocation_and_the_host_poisons_on_the_last_dequeue() -> None:
    """The output flush is part of the invocation: a refused write is a failure, released until
    ``DequeueCount >= MaxDequeueCount`` then copied to the poison queue (``CompleteProcessingMessageAsync``).
    The harness before issue 20 committed every output: this message would have been re-enqueued at once."""
    clock = _Clock()
    queue = InboxQueue(clock=clock, refuse_write=lambda name, body: name == "reynolds-inbox")
    queue.put("item")

    async def handler(requeue: Any, **_: Any) -> None:
        requeue.set("item again")

    await queue.drain(handler, advance=clock.advance)
    assert queue.failures == 10
    assert queue.host_poisoned == ["item"]
    assert clock.now - START == timedelta(seconds=9 * 60)


# ------------------------------------------------------------------------------ the inbox re-parks early
def _item(world: World, number: int) -> tuple[InboxItem, dict[str, str]]:
    headers, body = issue_delivery(world, number)
    from tools.world import signature_for

    headers["X-Hub-Signature-256"] = signature_for(world.settings.require("github_webhook_secret"), body)
    return InboxItem.of("github", headers, body, received_at=world.clock(),
                        delivery=headers["X-GitHub-Delivery"]), headers


@pytest.mark.parametrize("crash_on", range(1, 11))
async def test_a_crash_on_any_dequeue_costs_delay_only(world: World, crash_on: int) -> None:
    """The worker killed on dequeue ``crash_on`` of every message of the item, during a 30-minute store
    outage: re-parked from dequeue 5 on, never poisoned, answered once."""
    install(world, FaultSpec.model_validate({"store": {"outages": [{"at": 0, "seconds": 1800}]}}))
    item, _ = _item(world, crash_on)
    queue = world.inbox_queue()
    queue.crash = lambda m: m.dequeue_count == crash_on
    queue.put(item.model_dump_json())
    await world.drain_inbox()
    await world.client.advance(None)
    assert queue.poison == []
    assert len(answers(world, crash_on)) == 1


async def test_the_inbox_re_parks_on_dequeue_five_and_after_it_without_deciding(world: World,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    decided: list[int] = []

    async def failing(*_: Any) -> None:
        decided.append(1)
        raise ConnectionError("store down")

    monkeypatch.setattr(inbox_trigger, "decide_item", failing)
    item, _ = _item(world, 1)
    queue = world.inbox_queue()
    refused = {"n": 3}  # the first three re-park writes are refused

    def refuse(name: str, body: str) -> bool:
        refused["n"] -= 1
        return refused["n"] >= 0

    queue.refuse_write = refuse
    queue.put(item.model_dump_json())
    await queue.drain(lambda **b: _call_inbox(world, **b), max_deliveries=8, advance=world.clock.advance)
    assert len(decided) == 5  # dequeues 1-5 decide; 6, 7 and 8 re-park without deciding
    (message,) = queue.messages
    parked = InboxItem.model_validate_json(message.body)
    assert (parked.generation, message.dequeue_count, queue.poison) == (1, 0, [])
    assert "dequeue 7 did not complete" in (parked.last_error or "")


async def _call_inbox(world: World, **bindings: Any) -> None:
    from tools.world import call_function

    await call_function("inbox", client=world.client, **bindings)


def test_the_inbox_constants_are_host_json_s() -> None:
    from pathlib import Path

    queues = json.loads((Path(__file__).resolve().parents[1] / "host.json").read_text())["extensions"]["queues"]
    assert queues["maxDequeueCount"] == inbox_trigger.MAX_DEQUEUE_COUNT
    assert queues["visibilityTimeout"] == "00:01:00"
    assert inbox_trigger.VISIBILITY_TIMEOUT_SECONDS == 60


def test_the_retry_horizon_is_24_hours() -> None:
    generation = inbox_trigger.REPARK_DEQUEUE * inbox_trigger.VISIBILITY_TIMEOUT_SECONDS
    assert inbox_trigger.MAX_GENERATIONS * generation == 24 * 3600
    assert inbox_trigger.REPARK_DEQUEUE < inbox_trigger.MAX_DEQUEUE_COUNT - 1  # room for refused re-park writes


def test_a_poisoned_body_is_read_with_its_reason_or_the_hosts() -> None:
    item = InboxItem.of("github", {"X-GitHub-Delivery": "d"}, b"{}", received_at=START, delivery="d")
    assert inbox_trigger.read_poisoned(item.model_dump_json()) == (item, inbox_trigger.HOST_MOVED)
    text = inbox_trigger.poison_text(item, "", "retries exhausted: x")
    assert inbox_trigger.read_poisoned(text) == (item, "retries exhausted: x")
    assert inbox_trigger.read_poisoned("not json") == (None, inbox_trigger.HOST_MOVED)
    assert inbox_trigger.poison_cause("retries exhausted: x") == "exhausted"


# ------------------------------------------------------------------------------ the acceptance drill
def _graph_down(world: World, seconds: float) -> list[int]:
    """Every Graph request fails 503 for ``seconds`` from now (a Graph outage); the count of refusals."""
    from tools.fakes.graph import GraphError

    until = world.clock() + timedelta(seconds=seconds)
    original = world.graph._scripted
    refused = [0]

    def scripted(record: Any) -> None:
        if world.clock() < until:
            refused[0] += 1
            raise GraphError(503, "serviceNotAvailable", "Injected outage.")
        original(record)

    world.graph._scripted = scripted  # type: ignore[method-assign]
    return refused


async def test_drill_crash_every_dequeue_refuse_re_enqueues_graph_down_two_hours_loses_nothing(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20's acceptance drill: ten people open issues while the store is down for 2 h; the inbox worker
    is killed on dequeue n of person n's messages, the host itself dies on dequeue 10 of person 10's, every
    re-enqueue write is refused for the first 12 minutes (so the host poisons every first message); Graph is
    down for the same 2 h while a Teams message arrives through a change notification. 0 lost, 0 twice;
    every poisoned item is counted for the alert and decided again."""
    poisoned: list[str] = []
    monkeypatch.setattr(telemetry, "record_inbox_poisoned", poisoned.append)
    await world.ensure_subscriptions()
    await world.client.advance(None)
    t0 = world.clock()
    install(world, FaultSpec.model_validate({"store": {"outages": [{"at": 0, "seconds": 7200}]}}), start=t0)
    graph_refusals = _graph_down(world, 7200)
    people = range(1, 11)
    delivery_of: dict[str, int] = {}
    for n in people:
        headers, body = issue_delivery(world, n)
        delivery_of[headers["X-GitHub-Delivery"]] = n
        status, answer = await world.post_github(headers, body)
        assert (status, answer["verdict"]) == (202, "queued")
    world.graph.post_as({"user": {"id": "aad-ada", "displayName": "Ada", "userIdentityType": "aadUser"}},
                        "<p>The nightly export crashed with an error</p>", team="arena-team", channel="19:general")
    ((status, _),) = await world.deliver_notifications()
    assert status == 202

    def person(message: QueuedMessage) -> int:
        return delivery_of.get(json.loads(message.body).get("delivery") or "", 0)

    queue = world.inbox_queue()
    queue.crash = lambda m: m.dequeue_count == person(m)
    queue.lost = lambda m: person(m) == 10 and m.dequeue_count == 10
    queue.refuse_write = lambda name, body: world.clock() < t0 + timedelta(minutes=12)
    world.poison_queue().refuse_write = queue.refuse_write
    await world.drain_inbox()
    await world.client.advance(None)

    assert world.clock() >= t0 + timedelta(hours=2)
    assert len(queue.host_poisoned) == 10  # every first message poisoned by the host
    assert queue.poisoned_unseen == 1  # person 10's, at dequeue 11, without an invocation
    assert len(poisoned) == len(queue.poison) == 10  # each read, counted for the alert
    assert world.poison_queue().poison == []  # nothing poisoned a second time
    assert queue.messages == []
    for n in people:
        assert len(answers(world, n)) == 1, n
    assert graph_refusals[0] > 0
    assert len(world.teams_writes) == 1


async def test_a_teams_message_notified_during_a_two_hour_graph_outage_is_answered_once(world: World) -> None:
    """Before issue 20 the ingest gave up after 5 attempts (≈ 1 min) and recovery restarted it 3 times 10
    minutes apart: a 40-minute Graph outage lost the message."""
    await world.ensure_subscriptions()
    await world.client.advance(None)
    refused = _graph_down(world, 7200)
    world.graph.post_as({"user": {"id": "aad-ada", "displayName": "Ada", "userIdentityType": "aadUser"}},
                        "<p>The nightly export crashed with an error</p>", team="arena-team", channel="19:general")
    start = world.clock()
    await world.deliver_notifications()
    await world.client.advance(None)
    assert refused[0] >= 6
    assert world.clock() - start >= timedelta(hours=2)
    assert len(world.teams_writes) == 1


# ------------------------------------------------------------------------------ GitHub delivery recovery
async def test_a_twenty_hour_outage_loses_no_github_delivery(world: World) -> None:
    """Reynolds unreachable for 20 h (GitHub records each attempt as failed): recovery keeps redelivering
    inside GitHub's 3-day window with no count cap (before issue 20: 8 redeliveries, the last ~16.7 h after the
    first failure), and every event is answered once, within an hour of the outage's end."""
    from tools.fakes.github.app_api import delivery_log
    from triggers.recovery import recover_github

    log = delivery_log(world.github)
    guids = []
    for n in (50, 51, 52):
        headers, body = issue_delivery(world, n)
        log.record(world.github, headers, body, 503)
        guids.append(headers["X-GitHub-Delivery"])
        world.clock.advance(3600)
    end = START + timedelta(hours=20)
    redelivered = 0
    while world.clock() < end + timedelta(hours=2):
        report = recover_github(world.services)
        assert report is not None
        redelivered += len(report.redelivered)
        if world.clock() < end:  # still down: GitHub records each redelivery as failed
            while log.outbox:
                _guid, headers, body = log.outbox.pop(0)
                log.record(world.github, headers, body, 503)
        else:
            await world.redeliver_requested()
        world.clock.advance(600)
    await world.client.advance(None)
    for n in (50, 51, 52):
        assert len(answers(world, n)) == 1, n
    assert redelivered > 3 * 8  # more than the old cap of 8 per guid
    succeeded = {d.guid: d.delivered_at for d in log.items if 200 <= d.status_code < 300}
    assert set(succeeded) == set(guids)
    assert max(succeeded.values()) <= end + timedelta(hours=1, minutes=10)


async def test_recovery_pages_through_every_delivery_of_the_window(world: World) -> None:
    """A failure older than 2,500 later deliveries (25 pages of 100) is still found: the old scan stopped at
    2,000. GitHub's list is newest first with cursor paging (``apps/list-webhook-deliveries``)."""
    from tools.fakes.github.app_api import delivery_log
    from triggers.recovery import recover_github

    log = delivery_log(world.github)
    headers, body = issue_delivery(world, 60)
    log.record(world.github, headers, body, 502)
    for i in range(2500):
        log.record(world.github, {"X-GitHub-Delivery": f"ok-{i}", "X-GitHub-Event": "ping"}, b"{}", 200)
    world.clock.advance(3 * 86400 - 600)  # 10 minutes inside the window
    report = recover_github(world.services)
    assert report is not None
    assert report.scanned == 2501
    assert report.redelivered == [headers["X-GitHub-Delivery"]]
    ((status, answer),) = await world.redeliver_requested()
    await world.client.advance(None)
    assert (status, answer["verdict"]) == (202, "accepted")
    assert len(answers(world, 60)) == 1
