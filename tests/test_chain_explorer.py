"""The chain explorer: the API (JSON, Mermaid, a page; 404 for unknown ids), what the page says (judged kinds,
stop reasons, a legend derived from the code, a summary of several chains, long text fitted), task chains, and
``tools.explore``'s exit codes."""

from __future__ import annotations

import ast
import asyncio
import html
import json
import re
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

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


# -- what the page says (issue 18, item 7) -------------------------------------------------------------------

def _judged_chain() -> dict[str, object]:
    """A person's account the guard judged an automation (machine pace), stopped by the depth rule; a person
    whose judgement matches the claim; a declared human stopped by the pace rule."""
    relay = {"login": "relay-user", "kind": "human"}
    return {
        "chain_id": "c-judged", "head": {"events": 3, "max_depth": 6, "verdicts": {"accepted": 1, "loop": 2}},
        "events": [
            {"event_id": "github:a", "verdict": "accepted", "rule": "human", "reasons": ["human action"],
             "depth": 0, "type": "com.github.issues.opened", "actor": {"login": "alice", "kind": "human"},
             "target": "o/r#7", "judged_automated": False},
            {"event_id": "github:b", "verdict": "loop", "rule": "depth", "depth": 6, "via": "causal-text",
             "parent_id": "github:a", "actor": relay, "target": "o/r#7", "judged_automated": True,
             "reasons": ["loop: automated depth 6 exceeds the cap of 4",
                         "judged an automation by its behaviour: answers at a machine's pace"]},
            {"event_id": "github:c", "verdict": "loop", "rule": "pace", "depth": 0, "actor": relay,
             "target": "o/r#7", "reasons": ["loop: answered Reynolds 10 times in a row within 45 s"]},
        ],
        "effects": [{"event_id": "github:a", "effect_kind": "comment", "target": "o/r#7", "state": "done",
                     "resource_id": "comment:11", "platform": "github"}],
    }


def test_the_box_shows_what_the_guard_concluded_and_what_the_actor_claimed() -> None:
    from shared.chain_view import actor_label, build_graph, judged_kind

    chain = _judged_chain()
    events = chain["events"]
    assert isinstance(events, list)
    graph = build_graph(chain)
    assert "alice (human)" in graph.node("ev-0").lines
    assert "relay-user (automation; claimed human)" in graph.node("ev-1").lines
    assert graph.node("ev-1").data["actor-kind"] == "automation"
    # Tripping a rule that judges how one answers Reynolds is acting as an automation, whatever the account.
    assert judged_kind(events[2]) == "automation"
    # Older decisions without the flag: the reason says it.
    old = {**events[1], "judged_automated": None}
    assert actor_label(old) == "relay-user (automation; claimed human)"
    assert actor_label({"actor": {"login": "echo[bot]", "kind": "bot"}, "verdict": "loop", "rule": "depth"}) == \
        "echo[bot] (bot)"
    assert actor_label({"actor": {"login": "reynolds[bot]", "kind": "self"}, "verdict": "self"}) == \
        "reynolds[bot] (self)"


def test_the_stop_reason_is_on_the_page_outside_the_collapsed_tables() -> None:
    from shared.chain_view import render_page, stops

    page = render_page(_loop_chain())
    visible = page.split("<details>")[0]
    assert '<div class="stop-reason" data-node="ev-2" data-rule="depth">' in visible
    note = visible.split('data-node="ev-2"')[1].split("</div>")[0]
    assert "loop: automated depth 2 exceeds the cap of 1" in note  # the stored reason
    assert "LOOP_MAX_AUTOMATED_DEPTH" in note  # and what the rule means
    assert 'href="#legend-rule-depth"' in note
    held = visible.split('data-node="fx-2"')[1].split("</div>")[0]
    assert "breaker open" in held
    assert "message to teams:T/C" in held
    assert [s["node"] for s in stops(_loop_chain())] == ["ev-2", "fx-2"]
    assert 'class="stop-reason"' not in render_page({**_loop_chain(), "events": [], "effects": []})


def _module_strings(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` constants (so a rule passed by name is found too)."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            found.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
    return found


def _words_the_guard_writes() -> dict[str, set[str]]:
    """Every rule, via and effect-state word the code under ``shared/`` can store, read from its source: rules
    given to ``Judgement``/``Decision``/``replace`` (``rule=``), ``refuse`` and ``open_chain``, the default of
    ``Judgement.rule``; vias given to ``Evidence`` and ``_first``; effect states in the ledger."""
    words: dict[str, set[str]] = {"rule": set(), "via": set(), "state": set()}
    for path in sorted((ROOT / "shared").rglob("*.py")):
        if path.name == "chain_view.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = _module_strings(tree)

        def text(node: ast.expr | None, names: dict[str, str] = names) -> str | None:
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                return node.value
            return names.get(node.id) if isinstance(node, ast.Name) else None

        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in ("Judgement", "EffectRecord"):
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and \
                            item.target.id in ("rule", "state") and text(item.value):
                        words[item.target.id].add(str(text(item.value)))
            if isinstance(node, ast.Dict) and "loop" in path.parts:  # effect states live in the loop's ledger
                for key, value in zip(node.keys, node.values, strict=True):
                    if text(key) == "state" and text(value):
                        words["state"].add(str(text(value)))
            if not isinstance(node, ast.Call):
                continue
            func = node.func.id if isinstance(node.func, ast.Name) else \
                node.func.attr if isinstance(node.func, ast.Attribute) else ""
            for keyword in node.keywords:
                if keyword.arg in ("rule", "via") and text(keyword.value):
                    words[keyword.arg].add(str(text(keyword.value)))
            positional = {"Judgement": ("rule", 3), "Evidence": ("via", 3), "refuse": ("rule", 2),
                          "open_chain": ("rule", 2)}
            if func in positional:
                group, index = positional[func]
                if len(node.args) > index and text(node.args[index]):
                    words[group].add(str(text(node.args[index])))
            if func == "_first":
                for pair in node.args:
                    if isinstance(pair, ast.Tuple) and len(pair.elts) == 2 and text(pair.elts[1]):
                        words["via"].add(str(text(pair.elts[1])))
    return words


def test_the_legend_explains_every_word_the_code_can_write() -> None:
    from shared.chain_view import _RULE_FROM_REASON, EDGE_KINDS, LEGEND
    from shared.loop.envelope import ActorKind
    from shared.loop.rules import Verdict

    words = _words_the_guard_writes()
    # The scan itself finds what is known to be there (a scan that finds nothing proves nothing).
    assert {"human", "pass", "self", "depth", "cycle", "budget", "repeat", "pace", "exchanges", "loop-suspect",
            "task-quota", "task-request"} <= words["rule"]
    assert {"new", "marker", "ledger", "causal-text", "causal-actor", "causal-target", "causal-scope"} <= words["via"]
    assert {"intent", "done", "suppressed"} <= words["state"]
    words["rule"] |= {rule for _, rule in _RULE_FROM_REASON}
    words["verdict"] = {v.value for v in Verdict}
    words["kind"] = {k.value for k in ActorKind} | {"automation"}
    words["arrow"] = set(EDGE_KINDS)
    for group, found in words.items():
        missing = sorted(found - set(LEGEND[group]))
        assert not missing, f"add a legend entry (shared/chain_view.py LEGEND[{group!r}]) for {missing}"
        assert all(LEGEND[group][w].strip() for w in found)


def test_every_word_the_page_uses_is_in_its_legend() -> None:
    from shared.chain_view import LEGEND, render_pages

    page = render_pages([_loop_chain(), _judged_chain()], title="t")
    legend = page.split('<section class="legend" id="legend">')[1]
    used = {("verdict", v) for v in re.findall(r'data-verdict="([^"]+)"', page)}
    used |= {("rule", r) for r in re.findall(r'data-rule="([^"]+)"', page) if r}
    used |= {("via", v) for v in re.findall(r'class="edge [a-z]+"[^>]*data-label="([^"]+)"', page)}
    used |= {("arrow", k) for k in re.findall(r'class="edge ([a-z]+)"', page)}
    used |= {("state", s) for s in re.findall(r'data-state="([^"]+)"', page)}
    used |= {("kind", k) for k in re.findall(r'data-actor-kind="([^"]+)"', page)} | {("kind", "human")}
    assert {("via", "causal-text"), ("via", "marker"), ("kind", "automation"), ("state", "suppressed"),
            ("rule", "pace")} <= used
    for group, word in used:
        entry = re.search(rf'id="legend-{group}-{re.escape(word)}"[^>]*>.*?<dd>(.*?)</dd>', legend)
        assert entry, (group, word)
        assert entry.group(1) == html.escape(LEGEND[group][word])


def test_a_page_of_several_chains_starts_with_a_summary_table() -> None:
    from shared.chain_view import render_page, render_pages

    quiet = {"chain_id": "c-quiet", "head": {"events": 1}, "effects": [],
             "events": [{"event_id": "e", "verdict": "accepted", "rule": "human", "type": "com.github.issues.opened",
                         "time": "2026-01-01T00:00:05+00:00", "actor": {"login": "ann", "kind": "human"}}]}
    page = render_pages([quiet, _loop_chain()], title="t")
    table = page.split('<table class="overview">')[1].split("</table>")[0]
    assert page.index('<table class="overview">') < page.index('<section class="chain"')
    assert "<caption>2 chains, 1 stopped by the loop guard</caption>" in table
    rows = re.findall(r'<tr( class="stop")? data-chain-id="([^"]+)">(.*?)</tr>', table)
    assert [(css, chain) for css, chain, _ in rows] == [(' class="stop"', "c-1"), ("", "c-quiet")]  # stopped first
    stopped = [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td>(.*?)</td>", rows[0][2])]
    assert stopped == ["c-1", "issues.opened by alice (human)", "4", "3", "stopped at ev-2 (depth)"]
    quiet_cells = [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td>(.*?)</td>", rows[1][2])]
    assert quiet_cells == ["c-quiet", "issues.opened by ann (human) 2026-01-01 00:00:05", "1", "0", "not stopped"]
    for chain in ("c-1", "c-quiet"):
        assert f'<a href="#chain-{chain}">' in table
        assert f'<section class="chain" id="chain-{chain}"' in page
    assert '<table class="overview">' not in render_page(_loop_chain())


def test_long_targets_are_cut_to_fit_with_the_full_text_kept() -> None:
    from shared.chain_view import _EFFECT_W, _EVENT_W, _PAD, build_graph, render_svg, text_width

    target = "octo-enterprise-platform-team/" + "a-very-long-repository-name-" * 6 + "end#12345"
    teams = "teams:19:" + "x" * 120 + "@thread.tacv2/19:" + "y" * 80 + "@thread.tacv2"
    chain = _loop_chain()
    events, effects = chain["events"], chain["effects"]
    assert isinstance(events, list)
    assert isinstance(effects, list)
    events[0] = {**events[0], "target": target, "actor": {"login": "W" * 80, "kind": "human"}}
    effects[2] = {**effects[2], "target": teams}
    graph = build_graph(chain)
    for node in graph.nodes:
        room = (_EVENT_W if node.kind == "event" else _EFFECT_W) - 2 * _PAD - (76 if node.stop else 0)
        for i, line in enumerate(node.lines):
            assert text_width(line, bold=i == 1) <= room + (76 if node.stop and i > 0 else 0), (node.id, line)
    ev0 = graph.node("ev-0")
    assert ev0.full[3] == target
    assert ev0.lines[3].endswith("end#12345")  # cut in the middle: the issue number stays
    assert "…" in ev0.lines[3]
    assert graph.node("fx-2").lines[0].startswith("message → teams:")
    assert "…" in graph.node("fx-2").lines[0]
    assert graph.node("fx-2").lines[0].endswith(".tacv2")
    svg = render_svg(graph)
    assert f'data-full="{target}"' in svg
    assert f"<title>{target}</title>" in svg
    assert 'clip-path="url(#clip-c-1-ev-0)"' in svg


# -- task chains ----------------------------------------------------------------------------------------------

def _chain_of(chain_id: str) -> dict[str, Any]:
    answer = _get("get_chain", {}, {"chain_id": chain_id})
    assert answer.status_code == 200, answer.get_body()
    page = _get("get_chain", {"format": "html"}, {"chain_id": chain_id})
    assert page.status_code == 200
    assert f'data-chain-id="{chain_id}"' in page.get_body().decode()
    found: dict[str, Any] = json.loads(answer.get_body())
    return found


async def test_a_task_through_http_or_mcp_has_a_chain_the_explorer_draws() -> None:
    from tools.simulate_tasks import TASK_SETTINGS, post_task, prepare
    from tools.world import call_function

    task = {"type": "review", "description": "Review the retry logic", "components": ["api", "worker"]}
    with build_world(extra_settings=TASK_SETTINGS) as world:
        prepare(world)
        status, started = await post_task(world, {"task": task})
        assert status == 202
        await world.client.advance(None)
        chain = await asyncio.to_thread(_chain_of, started["chain_id"])
        (event,) = chain["events"]
        assert event["event_id"] == f"api-{started['instance_id']}"
        assert (event["verdict"], event["rule"], event["depth"]) == ("accepted", "task-request", 0)
        assert event["actor"]["login"] == "http-api"
        assert event["reasons"] == ["task asked for through POST /api/orchestrations (function key): "
                                    "starts its own chain"]
        kinds = sorted(x["effect_kind"] for x in chain["effects"])
        assert "comment" in kinds
        assert "issue" in kinds
        assert all(x["event_id"] == event["event_id"] for x in chain["effects"])
        mermaid = (await asyncio.to_thread(_get, "get_chain", {"format": "mermaid"},
                                           {"chain_id": started["chain_id"]})).get_body().decode()
        assert "ev0 --> fx0" in mermaid

        answers = [json.loads(await call_function(
            "mcp_orchestrate_task", client=world.client,
            context=json.dumps({"arguments": {"task": task, "idempotency_key": "k-18"}}))) for _ in range(2)]
        assert answers[0]["chain_id"] == answers[1]["chain_id"]  # a retried request: the same chain, once
        await world.client.advance(None)
        chain = await asyncio.to_thread(_chain_of, answers[0]["chain_id"])
        assert [(e["actor"]["login"], e["rule"]) for e in chain["events"]] == [("mcp-client", "task-request")]
        assert chain["head"]["events"] == 1
        assert chain["effects"]


async def test_a_task_through_service_bus_or_teams_has_a_chain_the_explorer_draws() -> None:
    from azure.servicebus import ServiceBusMessage

    from tools.simulate_tasks import TASK_SETTINGS, prepare

    with build_world(extra_settings=TASK_SETTINGS) as world:
        prepare(world)
        event = {"specversion": "1.0", "id": "task-18", "source": "/ops", "type": "com.contoso.task",
                 "time": "2026-01-01T00:01:00Z", "actorlogin": "ops-bot", "actorkind": "bot",
                 "data": {"task": {"type": "maintenance", "description": "Audit the release notes"}}}
        settlement = await world.deliver_servicebus(ServiceBusMessage(
            json.dumps(event).encode(), message_id="task-18", content_type="application/cloudevents+json"))
        assert settlement.outcome == "completed"
        activity = json.loads(json.loads((ROOT / "samples" / "teams-servicebus.jsonl").read_text(
            encoding="utf-8").splitlines()[0])["body"])
        activity["text"] = "<at>Reynolds</at> task: review the deploy scripts"
        status, answer, headers = await world.post_teams({"Authorization": "auto"}, json.dumps(activity).encode())
        assert status == 200
        await world.client.advance(None)
        sb_chain = world.services.lineage.get_event("servicebus:task-18")
        assert sb_chain is not None
        for chain_id, first in ((sb_chain["chain_id"], "servicebus:task-18"),
                                (headers["X-Reynolds-Chain-Id"], f"teams:{activity['id']}")):
            chain = await asyncio.to_thread(_chain_of, chain_id)
            assert chain["events"][0]["event_id"] == first
            assert chain["events"][0]["verdict"] == "accepted"
            assert {x["effect_kind"] for x in chain["effects"]} >= {"issue", "comment"}


def test_explore_draws_a_task_and_refuses_a_chain_that_is_not_there(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tools.explore import main

    page = tmp_path / "task.html"
    assert main(["--out", str(page), str(ROOT / "samples" / "task-fanout.json")]) == 0
    markup = page.read_text(encoding="utf-8")
    assert markup.count('<section class="chain"') == 1
    assert 'data-rule="task-request"' in markup
    assert 'id="legend-rule-task-request"' in markup
    capsys.readouterr()

    missing = tmp_path / "missing.html"
    assert main(["--out", str(missing), "--chain", "c-nope", str(ROOT / "samples" / "task-fanout.json")]) == 2
    assert "explore: no chain c-nope in this run" in capsys.readouterr().err
    assert not missing.exists()

    refused = tmp_path / "refused.jsonl"
    item = json.loads((ROOT / "samples" / "issues-opened.json").read_text(encoding="utf-8"))
    item["headers"]["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    refused.write_text(json.dumps(item) + "\n", encoding="utf-8")
    none = tmp_path / "none.html"
    assert main(["--out", str(none), str(refused)]) == 2
    assert "recorded no chain" in capsys.readouterr().err
    assert not none.exists()


def test_opening_a_task_chain_is_idempotent_and_completes_after_a_crash_between_its_writes() -> None:
    from datetime import UTC, datetime

    from shared.admission import task_request_event
    from shared.work.tasks import TaskSpec

    with build_world() as world:
        lineage = world.services.lineage
        event = task_request_event("api-task-1", "http", TaskSpec(type="review", description="Check the retries"),
                                   "octo/app#7", datetime(2026, 1, 1, tzinfo=UTC))
        first = lineage.open_chain(event, "asked", "task-request")
        assert (first.verdict.value, first.depth, first.rule) == ("accepted", 0, "task-request")
        again = lineage.open_chain(event, "asked", "task-request")
        assert (again.verdict.value, again.chain_id, again.original_verdict) == ("duplicate", first.chain_id,
                                                                                  first.verdict)
        chain = lineage.explore(str(first.chain_id))
        assert chain is not None
        assert chain["head"]["events"] == 1
        assert [e["target"] for e in chain["events"]] == ["octo/app#7"]

        # A crash after the head was written and before the event was: the retry records the event, once.
        crashed = task_request_event("api-task-2", "mcp", TaskSpec(type="review", description="Check the retries"),
                                     None, datetime(2026, 1, 1, tzinfo=UTC))
        opened = lineage.open_chain(crashed, "asked", "task-request")
        lineage.store.delete(f"ev:{crashed.id}", f"ev:{crashed.id}")
        assert lineage.explore(str(opened.chain_id))["events"] == []  # type: ignore[index]
        retried = lineage.open_chain(crashed, "asked", "task-request")
        assert (retried.verdict.value, retried.chain_id) == ("accepted", opened.chain_id)
        chain = lineage.explore(str(opened.chain_id))
        assert chain is not None
        assert [e["actor"]["login"] for e in chain["events"]] == ["mcp-client"]
        assert chain["head"]["events"] == 1


async def test_a_task_is_not_started_when_its_chain_cannot_be_recorded() -> None:
    from tools.faults.store import FaultyStore, Outage
    from tools.simulate_tasks import TASK_SETTINGS, post_task, prepare

    with build_world(extra_settings=TASK_SETTINGS) as world:
        prepare(world)
        lineage = world.services.lineage
        lineage.store = FaultyStore(lineage.store, world.clock, outages=[Outage(world.clock(), 60)])
        status, answer = await post_task(world, {"task": {"type": "review", "description": "Check the retries"}})
        assert status == 503
        assert answer == {"error": "the store is unavailable; try again later"}
        assert world.client.starts == 0  # nothing runs that the explorer could not show; the caller retries
        world.clock.advance(61)
        status, answer = await post_task(world, {"task": {"type": "review", "description": "Check the retries"}})
        assert status == 202
        assert world.client.starts == 1
