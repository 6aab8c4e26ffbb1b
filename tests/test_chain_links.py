"""Chain ids where an operator looks: the status comment, the paused notes, the Teams answer; each linked to
the explorer page when ``REYNOLDS_EXPLORER_URL`` is configured."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.chain_view import chain_html, chain_markdown
from shared.work.status_report import render_status_comment
from tools.world import World, build_world

ROOT = Path(__file__).resolve().parents[1]
BASE = "https://reynolds.example.net/api"
REPO = "octo/app"


def test_status_comment_names_the_chain_and_links_it() -> None:
    body = render_status_comment("t", "inst", {"a": "succeeded"}, None, None, chain_id="c-123",
                                 chain_url=f"{BASE}/chains/c-123?format=html")
    assert "Instance: `inst` · Chain: [`c-123`](https://reynolds.example.net/api/chains/c-123?format=html)" in body
    plain = render_status_comment("t", "inst", {"a": "succeeded"}, None, None, chain_id="c-123",
                                  chain_url="javascript:alert(1)")
    assert "Chain: `c-123`" in plain
    assert "javascript" not in plain


def test_chain_references_without_a_base_url_are_plain_ids() -> None:
    assert chain_markdown(None, "c-1") == "Chain: `c-1`"
    assert chain_html(None, "c-<1>") == "Chain: <code>c-&lt;1&gt;</code>"
    assert chain_html(BASE, "c-1") == f'Chain: <a href="{BASE}/chains/c-1?format=html"><code>c-1</code></a>'


async def _act(world: World, login: str, body: str) -> dict[str, object]:
    world.clock.advance(5)
    _status, answer = await world.comment(REPO, 7, body, login)
    return answer


async def test_the_paused_note_links_the_chain_the_loop_was_stopped_in() -> None:
    with build_world(profile="reply-all", extra_settings={"REYNOLDS_EXPLORER_URL": BASE}) as world:
        world.ensure_issue(REPO, 7, "Crash on start", "alice")
        world.github.add_user("relay-user")
        first = await _act(world, "relay-user", "Echo: the same words again")
        second = await _act(world, "relay-user", "Echo: the same words again")
        note = str(world.reynolds_writes[-1].resource.get("body") or "")
    assert "Reynolds · paused" in note
    found = re.search(r"Chain: \[`(c-[0-9a-f]+)`\]\((\S+)\)", note)
    assert found, note
    assert found.group(1) in {first["chain_id"], second["chain_id"]}
    assert found.group(2) == f"{BASE}/chains/{found.group(1)}?format=html"


async def test_the_teams_answer_names_the_chain() -> None:
    item = json.loads((ROOT / "samples" / "teams-servicebus.jsonl").read_text().splitlines()[0])
    with build_world() as world:
        status, _answer, headers = await world.post_teams(item["headers"], item["body"].encode())
        event = world.services.lineage.get_event(headers["X-Reynolds-Event-Id"]) or {}
    assert status == 200
    assert headers["X-Reynolds-Chain-Id"] == event["chain_id"]
    assert headers["X-Reynolds-Chain-Id"].startswith("c-")
    assert "X-Reynolds-Chain-Url" not in headers  # no base URL configured: no link

    with build_world(extra_settings={"REYNOLDS_EXPLORER_URL": BASE}) as world:
        _status, _answer, linked = await world.post_teams(item["headers"], item["body"].encode())
    assert linked["X-Reynolds-Chain-Url"] == f"{BASE}/chains/{linked['X-Reynolds-Chain-Id']}?format=html"


async def test_the_servicebus_answer_links_its_chain() -> None:
    from tools.simulate import servicebus_message

    item = json.loads((ROOT / "samples" / "teams-servicebus.jsonl").read_text().splitlines()[2])
    with build_world(extra_settings={"REYNOLDS_EXPLORER_URL": BASE}) as world:
        message = servicebus_message(item)
        settlement = await world.deliver_servicebus(message, delivery_count=1)
        await world.client.advance(None)
        event = world.services.lineage.get_event(f"servicebus:{message.message_id}") or {}
        sent = list(world.publisher.sent)
    assert settlement.outcome == "completed"
    assert sent
    answer = json.loads(b"".join(sent[-1][1].body))
    assert answer["data"]["chain_url"] == f"{BASE}/chains/{event['chain_id']}?format=html"
