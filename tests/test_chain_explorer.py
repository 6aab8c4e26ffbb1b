"""The chain explorer API: JSON and Mermaid for a chain, event → chain, 404 for unknown ids."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import azure.functions as func

from tools.harness.app_index import user_function
from tools.world import build_world

ROOT = Path(__file__).resolve().parents[1]


def _get(name: str, params: dict[str, str], route: dict[str, str]) -> func.HttpResponse:
    request = func.HttpRequest("GET", f"/api/{name}", headers={}, params=params, route_params=route, body=b"")
    return asyncio.run(user_function(name)(request))


def test_explorer_shows_the_chain_of_a_delivery() -> None:
    item = json.loads((ROOT / "samples" / "issues-opened.json").read_text())
    with build_world() as world:
        world.seed_from_payload(item["body"])
        status, answer = asyncio.run(world.post_github(item["headers"], json.dumps(item["body"]).encode()))
        assert status == 202
        chain_id, event_id = answer["chain_id"], answer["event_id"]

        chain = _get("get_chain", {}, {"chain_id": chain_id})
        assert chain.status_code == 200
        body = json.loads(chain.get_body())
        assert [e["verdict"] for e in body["events"]] == ["accepted"]
        assert body["events"][0]["reasons"] == ["human action"]
        assert [(x["effect_kind"], x["state"], x["target"]) for x in body["effects"]] == [
            ("comment", "done", "octo/app#7")]
        assert body["head"]["events"] == 1

        mermaid = _get("get_chain", {"format": "mermaid"}, {"chain_id": chain_id})
        text = mermaid.get_body().decode()
        assert mermaid.mimetype == "text/plain"
        assert text.startswith("flowchart TD")
        assert "ev0 --> fx0" in text

        page = _get("get_chain", {"format": "html"}, {"chain_id": chain_id})
        assert page.status_code == 200
        assert page.mimetype == "text/html"
        assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
        markup = page.get_body().decode()
        assert f'<svg xmlns="http://www.w3.org/2000/svg" class="chain" data-chain-id="{chain_id}"' in markup
        assert 'id="ev-0" class="node event" data-kind="event"' in markup
        assert 'href="https://github.com/octo/app/issues/7"' in markup

        event = _get("get_event", {}, {"event_id": event_id})
        assert json.loads(event.get_body())["chain_url"] == f"/api/chains/{chain_id}"
        assert json.loads(event.get_body())["page_url"] == f"/api/chains/{chain_id}?format=html"

        assert _get("get_chain", {}, {"chain_id": "c-unknown"}).status_code == 404
        assert _get("get_event", {}, {"event_id": "github:nope"}).status_code == 404
        assert _get("get_chain", {"format": "svg"}, {"chain_id": chain_id}).status_code == 400
        assert _get("get_chain", {}, {"chain_id": "bad/id"}).status_code == 400


def _loop_chain() -> dict[str, object]:
    """A stored chain of the shape ``LineageService.explore`` returns: a person, a bot answering Reynolds twice,
    the second answer stopped by the depth rule, and a breaker-suppressed effect."""
    actor = {"login": "echo[bot]", "kind": "bot"}
    return {
        "chain_id": "c-1", "head": {"events": 3, "max_depth": 2, "verdicts": {"accepted": 2, "loop": 1}},
        "events": [
            {"event_id": "github:a", "verdict": "accepted", "reasons": ["human action"], "depth": 0,
             "type": "com.github.issues.opened", "actor": {"login": "alice", "kind": "human"}, "target": "o/r#7"},
            {"event_id": "github:b", "parent_id": "github:a", "via": "marker", "verdict": "accepted",
             "reasons": ["automated action at depth 1 via marker"], "depth": 1, "actor": actor, "target": "o/r#7"},
            {"event_id": "github:c", "parent_id": "github:b", "via": "causal-text", "verdict": "loop", "depth": 2,
             "reasons": ["loop: automated depth 2 exceeds the cap of 1"], "actor": actor, "target": "o/r#7"},
            {"event_id": "github:d", "parent_id": "github:zzz", "verdict": "accepted", "reasons": [], "depth": 1,
             "actor": actor, "target": "o/r#8"},
        ],
        "effects": [
            {"event_id": "github:a", "effect_kind": "comment", "target": "o/r#7", "state": "done",
             "resource_id": "comment:11", "platform": "github"},
            {"event_id": "github:b", "effect_kind": "comment", "target": "o/r#7", "state": "done",
             "resource_id": "comment:12", "platform": "github"},
            {"event_id": "github:b", "effect_kind": "message", "target": "teams:T/C", "state": "suppressed",
             "reason": "breaker open", "platform": "teams"},
        ],
    }


def test_graph_links_effects_to_the_events_they_caused_and_marks_the_stop() -> None:
    from shared.chain_view import build_graph, render_mermaid, rule_of

    graph = build_graph(_loop_chain())
    edges = {(e.source, e.target, e.kind, e.label) for e in graph.edges}
    assert ("ev-0", "fx-0", "wrote", "") in edges
    assert ("fx-0", "ev-1", "caused", "marker") in edges  # Reynolds' comment came back as the bot's event
    assert ("fx-1", "ev-2", "caused", "causal-text") in edges  # the same-target written effect, not the held one
    assert not any(e.target == "ev-3" for e in graph.edges)  # its parent is not in this chain: no invented edge
    assert sorted(n.id for n in graph.nodes if n.stop) == ["ev-2", "fx-2"]
    assert graph.node("ev-2").data["rule"] == "depth"
    assert rule_of({"verdict": "loop", "rule": "cycle", "reasons": ["loop: automated depth"]}) == "cycle"
    assert graph.node("fx-1").href == "https://github.com/o/r/issues/7#issuecomment-12"
    assert graph.node("fx-2").href == "https://teams.microsoft.com/l/channel/C/?groupId=T"

    mermaid = render_mermaid(graph)
    assert "    fx0 ==>|marker| ev1" in mermaid
    assert "    class fx2,ev2 stop" in mermaid
    assert "classDef stop fill:#fde2e1,stroke:#c62828" in mermaid
    assert 'ev2["STOPPED<br/>' in mermaid


def test_explorer_url_needs_an_https_base() -> None:
    from shared.chain_view import explorer_url

    assert explorer_url("https://app.example.net/api/", "c-1") == "https://app.example.net/api/chains/c-1?format=html"
    assert explorer_url("http://app.example.net/api", "c-1") is None
    assert explorer_url(None, "c-1") is None
    assert explorer_url("https://app.example.net/api", None) is None
