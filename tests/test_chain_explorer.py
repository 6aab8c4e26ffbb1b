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
        assert "e0 --> x0" in text

        event = _get("get_event", {}, {"event_id": event_id})
        assert json.loads(event.get_body())["chain_url"] == f"/api/chains/{chain_id}"

        assert _get("get_chain", {}, {"chain_id": "c-unknown"}).status_code == 404
        assert _get("get_event", {}, {"event_id": "github:nope"}).status_code == 404
        assert _get("get_chain", {"format": "svg"}, {"chain_id": chain_id}).status_code == 400
        assert _get("get_chain", {}, {"chain_id": "bad/id"}).status_code == 400
