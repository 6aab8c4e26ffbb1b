"""Effects recorded before they can be repeated (issue 20, item 7): a crash between an effect and its ledger
write, then an outage of any length up to 3 h before the next attempt, never writes the answer twice — on
GitHub (the marker read back from the issue), Teams (the marker read back from the channel or chat through the
fake Graph's list routes) and Service Bus (the same message id, re-sent only inside the broker's 7-day
duplicate-detection window, counted from the effect's first attempt)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.loop.lineage import LineageService
from shared.loop.marker import find_markers
from shared.platforms.servicebus.contract import DUPLICATE_DETECTION_WINDOW
from shared.work.reply import ReplyInput
from tools.world import REYNOLDS_LOGIN, SIMULATE_MARKER_KEY, World, build_world

REPO = "octo/app"
OUTAGES = [0, 600, 3600, 3 * 3600]


@pytest.fixture
def world() -> Iterator[World]:
    with build_world() as w:
        w.github.add_repo(REPO)
        w.github.add_user("alice")
        yield w


@pytest.fixture
def crash_once(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The worker dies right after the external call returned, before the ledger records it (once per key)."""
    crashed: list[str] = []
    original = LineageService.complete_effect

    def complete(self: LineageService, record: Any, resource_id: str, text: str) -> Any:
        if record.key not in crashed:
            crashed.append(record.key)
            raise SystemExit(f"worker killed after writing {resource_id}")
        return original(self, record, resource_id, text)

    monkeypatch.setattr(LineageService, "complete_effect", complete)
    return crashed


class DedupingBroker:
    """A Service Bus queue's duplicate detection ("Duplicate detection", learn.microsoft.com/azure/
    service-bus-messaging/duplicate-detection): a message whose ``MessageId`` was accepted within the window is
    accepted by the send call and silently dropped. The window is the one ``infra/app/servicebus.bicep`` sets."""

    def __init__(self, clock: Any, window: timedelta) -> None:
        self.clock, self.window = clock, window
        self.seen: dict[str, datetime] = {}
        self.delivered: list[Any] = []
        self.dropped = 0

    async def send(self, queue: str, messages: Any) -> int:
        for message in messages:
            first = self.seen.get(str(message.message_id))
            if first is not None and self.clock() - first < self.window:
                self.dropped += 1
                continue
            self.seen[str(message.message_id)] = self.clock()
            self.delivered.append((queue, message))
        return len(messages)


def test_the_model_window_is_the_one_infra_deploys() -> None:
    bicep = (Path(__file__).resolve().parents[1] / "infra" / "app" / "servicebus.bicep").read_text()
    (value,) = re.findall(r"param duplicateDetectionWindow string = '([^']+)'", bicep)
    assert value == "P7D"
    assert timedelta(days=7) == DUPLICATE_DETECTION_WINDOW


def _teams_request() -> ReplyInput:
    return ReplyInput(event_id="teams:drill-1", event_type="message", chain_id="chain-teams-1", depth=0,
                      platform="teams", target="teams:arena-team/19:general", team_id="arena-team",
                      channel_id="19:general", actor="Ada", text="The export crashed")


@pytest.mark.parametrize("outage", OUTAGES)
async def test_teams_post_crash_before_the_ledger_then_an_outage_posts_once(world: World, crash_once: list[str],
                                                                           outage: int) -> None:
    reporter = world.services.teams_reporter()
    request = _teams_request()
    for _ in range(3):  # other people's messages in the channel meanwhile
        world.graph.post_as({"user": {"id": "aad-bob", "displayName": "Bob", "userIdentityType": "aadUser"}},
                            "<p>unrelated</p>", team="arena-team", channel="19:general")
    with pytest.raises(SystemExit):
        await reporter.post(key="reply:teams:drill-1", request=request, html_body="<p>Answer</p>", attempt=1, run="r1")
    world.clock.advance(outage)
    for _ in range(60):  # a busy channel during the outage: the read-back pages past them
        world.graph.post_as({"user": {"id": "aad-bob", "displayName": "Bob", "userIdentityType": "aadUser"}},
                            "<p>chatter</p>", team="arena-team", channel="19:general")
    record = await world.services.teams_reporter().post(key="reply:teams:drill-1", request=request,
                                                        html_body="<p>Answer</p>", attempt=2, run="r1")
    ours = [m for m in world.graph.messages[("channel", "arena-team", "19:general")].values()
            if any(k.valid for k in find_markers(m["body"]["content"], SIMULATE_MARKER_KEY))]
    assert len(ours) == 1
    assert (record.state, record.resource_id) == ("done", ours[0]["id"])


@pytest.mark.parametrize("outage", OUTAGES)
async def test_servicebus_answer_crash_before_the_ledger_then_an_outage_is_delivered_once(
        world: World, crash_once: list[str], outage: int) -> None:
    broker = DedupingBroker(world.clock, DUPLICATE_DETECTION_WINDOW)
    world.services.publisher = broker
    request = ReplyInput(event_id="servicebus:m-1", event_type="message", chain_id="chain-sb-1", depth=0,
                         platform="servicebus", target="reynolds-out", queue="reynolds-out", text="hello")
    with pytest.raises(SystemExit):
        await world.services.servicebus_reporter().publish(key="reply:servicebus:m-1", request=request, text="A",
                                                           data={}, attempt=1, run="r1")
    world.clock.advance(outage)
    record = await world.services.servicebus_reporter().publish(key="reply:servicebus:m-1", request=request,
                                                                text="A", data={}, attempt=2, run="r1")
    assert len(broker.delivered) == 1
    assert record.state == "done"
    assert broker.dropped == 1  # the second attempt re-sent the same message id; the broker dropped it


async def test_a_servicebus_retry_beyond_the_window_does_not_send_again(world: World, crash_once: list[str],
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Past the broker's window a re-send would be delivered: the answer is recorded, not re-sent, and logged."""
    broker = DedupingBroker(world.clock, DUPLICATE_DETECTION_WINDOW)
    world.services.publisher = broker
    request = ReplyInput(event_id="servicebus:m-2", event_type="message", chain_id="chain-sb-2", depth=0,
                         platform="servicebus", target="reynolds-out", queue="reynolds-out", text="hello")
    with pytest.raises(SystemExit):
        await world.services.servicebus_reporter().publish(key="reply:servicebus:m-2", request=request, text="A",
                                                           data={}, attempt=1, run="r1")
    world.clock.advance(8 * 86400)
    record = await world.services.servicebus_reporter().publish(key="reply:servicebus:m-2", request=request,
                                                                text="A", data={}, attempt=2, run="r1")
    assert (len(broker.delivered), broker.dropped, record.state) == (1, 0, "done")
    assert "beyond the duplicate-detection window" in caplog.text


@pytest.mark.parametrize("outage", OUTAGES)
async def test_github_comment_crash_before_the_ledger_then_an_outage_posts_once(world: World, crash_once: list[str],
                                                                               outage: int) -> None:
    world.github.create_issue(REPO, "It crashes", "Traceback", login="alice", number=7)
    reporter = world.services.reporter()
    kwargs: dict[str, Any] = {"key": "triage:gh-7", "repo": REPO, "number": 7, "installation_id": None,
                              "body": "Answer", "chain_id": "chain-gh-7", "event_id": "github:7", "depth": 1}
    with pytest.raises(SystemExit):
        await asyncio.to_thread(reporter.post_comment, **kwargs, attempt=1, run="r1")
    world.clock.advance(outage)
    record = await asyncio.to_thread(world.services.reporter().post_comment, **kwargs, attempt=2, run="r1")
    ours = [c for c in world.github.comments(REPO, 7) if c["user"]["login"] == REYNOLDS_LOGIN]
    assert len(ours) == 1
    assert record.resource_id == f"comment:{ours[0]['id']}"


def test_the_fake_graph_lists_newest_first_in_pages_of_at_most_50(world: World) -> None:
    """"List channel messages" / "List messages in a chat": ``$top`` ≤ 50 (else 400), ``@odata.nextLink``."""
    import json
    import urllib.error
    import urllib.request

    for i in range(3):
        world.graph.post_as({"user": {"id": "aad-bob", "displayName": "Bob", "userIdentityType": "aadUser"}},
                            f"<p>m{i}</p>", team="arena-team", channel="19:general")
    url = f"{world.graph.base_url}/teams/arena-team/channels/19:general/messages"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{url}?$top=51")  # noqa: S310 - the loopback fake
    assert refused.value.code == 400
    with urllib.request.urlopen(f"{url}?$top=2") as answer:  # noqa: S310
        page = json.loads(answer.read())
    assert [m["body"]["content"] for m in page["value"]] == ["<p>m2</p>", "<p>m1</p>"]
    with urllib.request.urlopen(page["@odata.nextLink"]) as answer:  # noqa: S310
        rest = json.loads(answer.read())
    assert [m["body"]["content"] for m in rest["value"]] == ["<p>m0</p>"]
    assert "@odata.nextLink" not in rest
