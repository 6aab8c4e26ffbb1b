"""Nothing lost under faults (issue 14): store 429/503/timeouts and outages, Durable outages, GitHub 5xx, primary
and secondary limits with and without Retry-After, a crash after the write and a late commit — every human
event is answered exactly once, through the inbox, durable retries, the shared pacer and delivery recovery."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.loop.marker import find_markers
from tools.fakes.github.app_api import commit_due, delivery_log
from tools.faults.spec import FaultSpec, install
from tools.simulate import raw_body
from tools.world import REYNOLDS_LOGIN, SIMULATE_MARKER_KEY, START, World, build_world
from triggers.ingress import InboxItem
from triggers.recovery import recover_github, restart_failed

REPO = "octo/app"
TEAMS_SAMPLES = (Path(__file__).resolve().parents[1] / "samples" / "teams-servicebus.jsonl").read_text().splitlines()
COMMENTS = r"/issues/\d+/comments$"


@pytest.fixture
def world() -> Iterator[World]:
    with build_world() as w:
        w.github.add_repo(REPO)
        w.github.add_user("alice")
        yield w


def issue_delivery(world: World, number: int) -> tuple[dict[str, str], bytes]:
    """``issues.opened`` by a person of its own on a fresh issue, as GitHub would deliver it (distinct people
    and texts: the loop guard's repeat breakers must not be what this measures)."""
    writes: list[Any] = []
    login = f"person{number}"
    world.github.add_user(login)
    world.github.on_write.append(writes.append)
    try:
        world.github.create_issue(REPO, f"Issue {number}", f"Report {number}: it crashes with a traceback",
                                  login=login, number=number)
    finally:
        world.github.on_write.remove(writes.append)
    event, payload = world.github.webhook_for(writes[0]) or ("", {})
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": "auto",
               "Content-Type": "application/json"}
    return headers, raw_body(payload)


def answers(world: World, number: int) -> list[dict[str, Any]]:
    """Reynolds' comments on issue ``number``, each checked to carry a valid marker."""
    found = [c for c in world.github.comments(REPO, number) if c["user"]["login"] == REYNOLDS_LOGIN]
    for comment in found:
        assert all(m.valid for m in find_markers(comment["body"], SIMULATE_MARKER_KEY))
    return found


async def deliver(world: World, number: int) -> tuple[int, dict[str, Any]]:
    headers, body = issue_delivery(world, number)
    status, answer = await world.post_github(headers, body)
    answer = await world.settle(answer)
    await world.client.advance(None)
    return status, answer


# ----------------------------------------------------------------------------------------------- the inbox
async def test_a_store_outage_at_the_door_queues_the_delivery_and_it_is_answered_later(world: World) -> None:
    install(world, FaultSpec.model_validate({"store": {"outages": [{"at": 0, "seconds": 300}]}}))
    headers, body = issue_delivery(world, 1)
    status, answer = await world.post_github(headers, body)
    assert (status, answer["verdict"]) == (202, "queued")  # before the inbox: 503, and the event was lost
    assert len(world.inbox_queue()) == 1
    item = InboxItem.model_validate_json(world.inbox_queue().messages[0].body)
    assert (item.source, item.delivery, item.raw()) == ("github", headers["X-GitHub-Delivery"], body)

    settled = await world.settle(answer)
    await world.client.advance(None)
    assert settled["verdict"] == "accepted"
    assert world.clock() >= START + timedelta(seconds=300)  # decided once the store came back
    assert world.inbox_queue().failures >= 5
    assert world.inbox_queue().poison == []
    assert len(answers(world, 1)) == 1


async def test_a_durable_outage_delays_the_start_never_drops_it(world: World) -> None:
    installed = install(world, FaultSpec.model_validate({"durable": {"outages": [{"at": 0, "seconds": 180}]}}))
    status, answer = await deliver(world, 2)
    assert status == 202
    assert answer["verdict"] == "accepted"
    assert installed.durable_failures[0] >= 2
    assert world.client.starts == 1
    assert len(answers(world, 2)) == 1


async def test_an_outage_longer_than_max_dequeue_count_is_re_enqueued_not_poisoned(world: World) -> None:
    install(world, FaultSpec.model_validate({"store": {"outages": [{"at": 0, "seconds": 1500}]}}))
    status, answer = await deliver(world, 3)
    queue = world.inbox_queue()
    assert queue.failures >= 20
    assert queue.poison == []
    assert answer["verdict"] == "accepted"
    assert len(answers(world, 3)) == 1


async def test_an_item_that_no_longer_verifies_goes_to_poison_with_its_reason(world: World) -> None:
    headers, body = issue_delivery(world, 4)
    forged = InboxItem.of("github", {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}, body,
                          received_at=world.clock(), delivery=headers["X-GitHub-Delivery"])
    queue = world.inbox_queue()
    for text in (forged.model_dump_json(), "not an item"):
        out = queue.out()
        out.set(text)
        queue.commit(out)
    await world.drain_inbox()
    reasons = [json.loads(p)["poison_reason"] for p in queue.poison]
    assert reasons[0].startswith("SignatureError")
    assert reasons[1] == "malformed inbox item"
    assert answers(world, 4) == []
    assert world.client.starts == 0


async def test_thirty_percent_store_faults_and_a_ten_minute_outage_answer_every_event_once(world: World) -> None:
    """The issue's measure, small: 12 people, 30 % store faults (429/503/timeouts, half the write timeouts
    after the write) and a full 10-minute outage in the middle; every event answered exactly once."""
    installed = install(world, FaultSpec.model_validate(
        {"store": {"fraction": 0.3, "seed": 7, "outages": [{"at": 120, "seconds": 600}]}}))
    for number in range(10, 22):
        await deliver(world, number)
        world.clock.advance(30)
    await world.drain_inbox()
    await world.client.advance(None)
    assert installed.store is not None
    assert installed.store.injected.get("outage", 0) > 0
    assert {n: len(answers(world, n)) for n in range(10, 22)} == dict.fromkeys(range(10, 22), 1)
    assert world.inbox_queue().poison == []


# ------------------------------------------------------------------------------------------ GitHub faults
async def test_a_crash_after_the_write_never_duplicates(world: World) -> None:
    install(world, FaultSpec.model_validate({"github": [{"mode": "after_write", "times": 2}]}))
    await deliver(world, 30)
    assert len(answers(world, 30)) == 1


async def test_a_late_commit_is_found_on_the_second_look(world: World) -> None:
    install(world, FaultSpec.model_validate({"github": [{"mode": "late_commit", "delay_seconds": 15}]}))
    await deliver(world, 31)
    assert len(answers(world, 31)) == 1  # before: the retry found nothing and posted a second comment
    posts = [c for c in world.github.calls if c.method == "POST" and "/comments" in c.path]
    assert [c.status for c in posts] == [504, 201]  # the late write (replayed) and no second POST by Reynolds


@pytest.mark.parametrize("delay", [600, 3 * 3600, 2 * 86400])
async def test_a_commit_later_than_the_grace_is_found_and_removed_at_any_delay(world: World, delay: int) -> None:
    """Issue 20: GitHub storing the first write after the retry posted (10 min, 3 h, 2 days late): the recovery
    timer's sweep finds the late copy by its marker and deletes it; the recorded answer stays."""
    from triggers.recovery import sweep_late_commits

    install(world, FaultSpec.model_validate({"github": [{"mode": "late_commit", "delay_seconds": delay}]}))
    await deliver(world, 32)
    (kept,) = answers(world, 32)
    assert sweep_late_commits(world.services) == []
    world.clock.advance(delay)
    assert commit_due(world.github) == 1  # GitHub stores the first write after all
    assert len(answers(world, 32)) == 2  # for at most one recovery run (10 min)
    deleted = sweep_late_commits(world.services)
    assert len(deleted) == 1
    assert [c["id"] for c in answers(world, 32)] == [kept["id"]]
    assert sweep_late_commits(world.services) == []


async def test_github_5xx_beyond_the_old_attempt_cap_is_waited_out(world: World) -> None:
    install(world, FaultSpec.model_validate({"github": [{"mode": "5xx", "status": 503, "times": 12}]}))
    status, answer = await deliver(world, 33)
    assert await world.runtime_status(answer["instance_id"]) == "Completed"
    assert len(answers(world, 33)) == 1


def _comment_posts(world: World) -> list[Any]:
    return [c for c in world.github.calls if c.method == "POST" and c.path.endswith("/comments")]


async def test_a_secondary_limit_without_retry_after_waits_a_minute_then_longer(world: World) -> None:
    install(world, FaultSpec.model_validate({"github": [{"mode": "secondary", "retry_after": None, "times": 3}]}))
    status, answer = await deliver(world, 34)
    run = world.client.run_of(answer["instance_id"])
    waits = [(fires - created).total_seconds() for created, fires in run.timers]
    assert waits[0] >= 60
    assert waits[1] >= 120
    assert waits[2] >= 240
    assert len(answers(world, 34)) == 1
    assert len(_comment_posts(world)) == 4


async def test_a_twenty_minute_secondary_limit_with_retry_after_loses_nothing(world: World) -> None:
    """``Retry-After: 60`` answered to every write for 20 minutes: the 5-attempt cap gave up; now every POST
    waits out the limit (none inside GitHub's wait) and the answer goes out."""
    install(world, FaultSpec.model_validate({"github": [{"mode": "secondary", "retry_after": 60, "times": 1000}]}))
    headers, body = issue_delivery(world, 35)
    status, answer = await world.post_github(headers, body)
    horizon = world.clock() + timedelta(minutes=20)
    while world.clock() < horizon:
        await world.client.advance(300)
    world.github.clear_faults()
    await world.client.advance(None)
    posts = _comment_posts(world)
    limited = [c for c in posts if c.status == 403]
    assert len(answers(world, 35)) == 1
    assert len(limited) <= 6  # one POST per penalty (60 s, then doubling), never a burst inside the wait


async def test_a_primary_limit_waits_until_reset(world: World) -> None:
    install(world, FaultSpec.model_validate({"github": [{"mode": "primary", "retry_after": 900}]}))
    status, answer = await deliver(world, 36)
    run = world.client.run_of(answer["instance_id"])
    ((created, fires), *_) = run.timers
    assert (fires - created).total_seconds() >= 899
    assert len(answers(world, 36)) == 1


# ------------------------------------------------------------------------------------- delivery recovery
async def test_a_delivery_that_never_reached_reynolds_is_redelivered_once(world: World) -> None:
    headers, body = issue_delivery(world, 40)
    delivery_log(world.github).record(world.github, headers, body, 503)  # GitHub saw Reynolds down
    world.clock.advance(600)
    report = recover_github(world.services)
    assert report is not None
    assert (report.failed_guids, report.redelivered) == (1, [headers["X-GitHub-Delivery"]])
    ((status, answer),) = await world.redeliver_requested()
    await world.client.advance(None)
    assert (status, answer["verdict"]) == (202, "accepted")
    assert len(answers(world, 40)) == 1
    world.clock.advance(3600)
    again = recover_github(world.services)
    assert again is not None
    assert (again.failed_guids, again.redelivered) == (0, [])
    items = delivery_log(world.github).items
    assert [(i.guid, i.redelivery, i.status_code) for i in items] == [
        (headers["X-GitHub-Delivery"], False, 503), (headers["X-GitHub-Delivery"], True, 202)]


async def test_recovery_backs_off_per_guid_and_ignores_deliveries_past_three_days(world: World) -> None:
    old_headers, old_body = issue_delivery(world, 41)
    delivery_log(world.github).record(world.github, old_headers, old_body, 500)
    world.clock.advance(3 * 86400)
    headers, body = issue_delivery(world, 42)
    delivery_log(world.github).record(world.github, headers, body, 500)
    world.clock.advance(300)
    first = recover_github(world.services)
    assert first is not None
    assert first.redelivered == [headers["X-GitHub-Delivery"]]
    assert first.scanned == 1
    delivery_log(world.github).outbox.clear()  # the redelivery failed again (Reynolds still down)
    delivery_log(world.github).record(world.github, headers, body, 503)
    world.clock.advance(300)
    second = recover_github(world.services)
    assert second is not None
    assert second.redelivered == []
    assert second.skipped == {
        headers["X-GitHub-Delivery"]: "redelivered recently"}


async def test_app_endpoints_need_the_app_jwt(world: World) -> None:
    status, body = world.github.act("alice", "GET", "/app/hook/deliveries")
    assert (status, body["message"]) == (401, "A JSON web token could not be decoded")


async def test_a_failed_answer_is_restarted_from_reynolds_records(world: World) -> None:
    world.github.fail_next("POST", COMMENTS, 422, times=10_000)
    status, answer = await deliver(world, 43)
    assert await world.runtime_status(answer["instance_id"]) == "Failed"
    world.github.clear_faults()
    assert await restart_failed(world.client, world.services) == [answer["instance_id"]]
    await world.client.advance(None)
    assert await world.runtime_status(answer["instance_id"]) == "Completed"
    assert len(answers(world, 43)) == 1
    assert await restart_failed(world.client, world.services) == []


# ---------------------------------------------------------------------------------------- store retries
class _Flaky:
    """A store whose next calls fail with the given messages (then delegate to a memory store)."""

    def __init__(self, *failures: str) -> None:
        from shared.store.memory import MemoryStore

        self.inner = MemoryStore()
        self.failures = list(failures)
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any) -> Any:
            from shared.errors import StoreError

            self.calls.append(name)
            if self.failures:
                message = self.failures.pop(0)
                status = re.search(r"HTTP (\d{3})", message)
                raise StoreError(message, status_code=int(status.group(1)) if status else None)
            return getattr(self.inner, name)(*args)

        return call


def test_the_resilient_store_retries_reads_and_only_writes_that_did_not_apply() -> None:
    from shared.errors import StoreError
    from shared.store.resilient import ResilientStore

    pauses: list[float] = []
    flaky = _Flaky("Cosmos DB create failed: HTTP 429", "Cosmos DB create failed: HTTP 503")
    store = ResilientStore(flaky, sleep=pauses.append)
    store.create({"id": "a", "pk": "a"})
    assert (flaky.calls, pauses) == (["create"] * 3, [0.05, 0.1])

    flaky.failures = ["Cosmos DB replace failed: ServiceResponseError"]  # a timeout: the write may have applied
    with pytest.raises(StoreError, match="ServiceResponseError"):
        store.replace({"id": "a", "pk": "a", "n": 1}, None)
    flaky.failures = ["Cosmos DB read failed: ServiceResponseError", "Cosmos DB read failed: HTTP 503"]
    assert store.read("a", "a")["id"] == "a"  # reads are always safe to repeat
    flaky.failures = ["Cosmos DB read failed: HTTP 400"] * 2
    with pytest.raises(StoreError, match="HTTP 400"):
        store.read("a", "a")  # a bad request will not change
    assert flaky.failures == ["Cosmos DB read failed: HTTP 400"]


# ------------------------------------------------------------------------------ the Cosmos fault proxy
def test_the_cosmos_fault_proxy_puts_faults_on_the_wire_for_the_real_sdk(cosmos_server: Any) -> None:
    """Through the proxy the app's own Cosmos client works, retries a 429 three times (honouring
    ``x-ms-retry-after-ms``) before the store reports it, and sees an outage as 503."""
    from shared.errors import StoreError
    from shared.settings import load_settings
    from shared.store.cosmos import ensure_container, make_cosmos_store
    from tools.faults.cosmos_proxy import fault_proxy

    settings = load_settings(cosmos_server.environment(container=f"test-{uuid.uuid4().hex[:12]}"))
    ensure_container(settings)
    with fault_proxy(cosmos_server.endpoint, kinds=("429",)) as (endpoint, proxy):
        store = make_cosmos_store(settings.model_copy(update={"cosmos_endpoint": endpoint}))
        try:
            store.create({"id": "a", "pk": "a", "n": 1})
            assert store.read("a", "a")["n"] == 1
            assert proxy.forwarded >= 2
            proxy.fraction = 1.0
            with pytest.raises(StoreError, match="HTTP 429"):
                store.read("a", "a")
            assert proxy.injected == {"429": 4}  # the first try and CLIENT_OPTIONS' 3 throttling retries
            proxy.fraction, proxy.outage = 0.0, True
            with pytest.raises(StoreError, match="HTTP 503"):
                store.upsert({"id": "a", "pk": "a", "n": 2})
            proxy.outage = False
            assert store.read("a", "a")["n"] == 1  # the refused write did not happen
        finally:
            store.close()


async def test_a_servicebus_message_during_an_outage_completes_into_the_inbox_and_is_answered(world: World) -> None:
    """The broker would redeliver at once and dead-letter within seconds of an outage; the inbox waits it out."""
    from azure.servicebus import ServiceBusMessage

    install(world, FaultSpec.model_validate({"store": {"outages": [{"at": 0, "seconds": 300}]}}))
    event = {"specversion": "1.0", "id": "m-1", "source": "/drill/alice", "type": "com.drill.message",
             "time": world.clock().isoformat(), "datacontenttype": "application/json",
             "data": {"text": "The nightly export crashed with an error"}, "actorlogin": "alice", "actorkind": "human"}
    message = ServiceBusMessage(json.dumps(event), message_id="m-1", content_type="application/cloudevents+json")
    settlement = await world.deliver_servicebus(message)
    assert (settlement.outcome, settlement.deliveries) == ("completed", 1)
    assert len(world.inbox_queue()) == 1
    assert world.publisher.sent == []
    await world.drain_inbox()
    await world.client.advance(None)
    ((queue, reply),) = world.publisher.sent
    assert queue == world.settings.servicebus_out_queue
    assert world.inbox_queue().poison == []


async def test_a_teams_message_during_a_durable_outage_is_acknowledged_then_answered_once(world: World) -> None:
    """Teams waits 5 s for the acknowledgement: it gets one at once (``queued``), and the answer comes later."""
    from tools.simulate import run_teams

    install(world, FaultSpec.model_validate({"durable": {"outages": [{"at": 0, "seconds": 240}]}}))
    item = next(json.loads(line) for line in TEAMS_SAMPLES if '"source": "teams"' in line)
    status, answer, headers = await world.post_teams(
        {k: str(v) for k, v in item["headers"].items()}, raw_body(item["body"]))
    assert (status, headers["X-Reynolds-Verdict"]) == (200, "queued")
    assert "will answer" in json.dumps(answer)
    await world.drain_inbox()
    await world.client.advance(None)
    assert len(world.teams_writes) == 1
    line = await run_teams(world, item)  # Teams retrying the same activity: decided before, nothing new
    assert (line["verdict"], line["effects"]) == ("duplicate", [])


async def test_a_graph_notification_during_a_durable_outage_is_queued_and_answered_once(world: World) -> None:
    await world.ensure_subscriptions()
    await world.client.advance(None)
    install(world, FaultSpec.model_validate({"durable": {"outages": [{"at": 0, "seconds": 240}]}}))
    world.graph.post_as({"user": {"id": "aad-ada", "displayName": "Ada", "userIdentityType": "aadUser"}},
                        "<p>The nightly export crashed with an error</p>", team="arena-team", channel="19:general")
    ((status, answer),) = await world.deliver_notifications()
    assert (status, answer["verdict"]) == (202, "queued")  # Graph gets its 202 within 10 s all the same
    await world.drain_inbox()
    await world.client.advance(None)
    ((reply,),) = [world.teams_writes]
    assert "Reynolds" in json.dumps(reply)
    assert world.inbox_queue().poison == []
