"""The chain explorer page in a real browser: headless Chromium (Debian's ``chromium``) renders the page of a
loop the arena stopped, and the drawing is checked from inside the browser (boxes laid out, arrows present,
the stopping point drawn red, every line of text inside its box, the stop reason shown without expanding
anything, the legend and the summary table of a page of several chains laid out, nothing wider than the window).

``make test`` and ``.ci/run`` install ``chromium`` with apt when it is missing; without it this test fails
with the command to run (it never skips: a page nobody rendered is not tested).

The page is the one ``GET /api/chains/{id}?format=html`` answers. For the test a probe script is appended to
a copy of it (the API's page runs no script: its Content-Security-Policy forbids them); Chromium's
``--dump-dom`` prints the document after the probe ran. A screenshot is written to ``docs/stopped-loop.png``
for the README when that file is missing or ``REYNOLDS_UPDATE_SCREENSHOTS=1`` (chain ids change per run,
so it is not rewritten on every run).
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shared.chain_view import render_page, render_pages
from tools.arena import Scenario, chain_ids, run_scenario
from tools.world import World

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "samples" / "arena" / "app-bot-ping-pong.json"
SCREENSHOT = ROOT / "docs" / "stopped-loop.png"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

PROBE = """
<script>
(function () {
  const out = {nodes: [], edges: [], svg: null};
  const svg = document.querySelector("svg.chain");
  const box = svg.getBoundingClientRect();
  out.svg = {width: box.width, height: box.height};
  for (const g of svg.querySelectorAll("g.node")) {
    const rect = g.querySelector("rect");
    const b = rect.getBBox();
    out.nodes.push({id: g.id, kind: g.dataset.kind, verdict: g.dataset.verdict || null, rule: g.dataset.rule || null,
                    state: g.dataset.state || null, stop: g.dataset.stop === "true",
                    stroke: getComputedStyle(rect).stroke, fill: getComputedStyle(rect).fill,
                    x: b.x, y: b.y, width: b.width, height: b.height,
                    text: Array.from(g.querySelectorAll("text")).map(t => t.textContent),
                    textWidth: Math.max(...Array.from(g.querySelectorAll("text")).map(t => t.getComputedTextLength())),
                    lines: Array.from(g.querySelectorAll("text.line")).map(t => {
                      const l = t.getBBox();
                      return {text: t.textContent, x: l.x, y: l.y, width: l.width, height: l.height};
                    }),
                    href: (g.querySelector("a") || {getAttribute: () => null}).getAttribute("href")});
  }
  for (const e of svg.querySelectorAll("g.edge")) {
    out.edges.push({kind: e.classList[1], from: e.dataset.from, to: e.dataset.to,
                    length: e.querySelector("path").getTotalLength()});
  }
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""

# Probes a page of several chains: every line of every box, the stop reasons, the legend, the summary table,
# and every element that is wider than its box or the window.
PAGE_PROBE = """
<script>
(function () {
  const out = {svgs: [], stops: [], legend: [], rows: [], overflow: [], doc: null};
  for (const svg of document.querySelectorAll("svg.chain")) {
    const nodes = [];
    for (const g of svg.querySelectorAll("g.node")) {
      const r = g.querySelector("rect").getBBox();
      nodes.push({id: g.id, stop: g.dataset.stop === "true", actorKind: g.dataset.actorKind || null,
                  rect: {x: r.x, y: r.y, width: r.width, height: r.height},
                  lines: Array.from(g.querySelectorAll("text.line")).map(t => {
                    const l = t.getBBox();
                    return {text: t.textContent, full: t.dataset.full || null, x: l.x, y: l.y, width: l.width,
                            height: l.height, title: (t.parentNode.querySelector(":scope > title") || {}).textContent};
                  })});
    }
    const labels = Array.from(svg.querySelectorAll("g.edge text")).map(t => t.getComputedTextLength());
    out.svgs.push({chain: svg.dataset.chainId, nodes, right: svg.getBoundingClientRect().right,
                   widestLabel: Math.max(0, ...labels)});
  }
  for (const el of document.querySelectorAll(".stop-reason")) {
    const b = el.getBoundingClientRect();
    out.stops.push({node: el.dataset.node, rule: el.dataset.rule || el.dataset.state || null, text: el.textContent,
                    height: b.height, inDetails: el.closest("details") !== null, visible: el.checkVisibility(),
                    chain: el.closest("section").dataset.chainId});
  }
  for (const el of document.querySelectorAll(".legend .entry")) {
    const b = el.getBoundingClientRect();
    out.legend.push({group: el.dataset.group, word: el.dataset.word, height: b.height, right: b.right,
                     visible: el.checkVisibility(), text: el.querySelector("dd").textContent});
  }
  for (const tr of document.querySelectorAll("table.overview tr[data-chain-id]")) {
    const link = tr.querySelector("a").getAttribute("href");
    const target = document.getElementById(link.slice(1));
    out.rows.push({chain: tr.dataset.chainId, cells: Array.from(tr.cells).map(c => c.textContent),
                   target: target ? target.dataset.chainId : null, visible: tr.checkVisibility()});
  }
  for (const el of document.querySelectorAll("h1, h2, p, td, th, .stop-reason, .legend .entry, table")) {
    const b = el.getBoundingClientRect();
    if (el.scrollWidth > el.clientWidth + 1 || b.right > window.innerWidth) {
      out.overflow.push(el.outerHTML.slice(0, 160));
    }
  }
  out.doc = {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
             height: document.documentElement.scrollHeight};
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""
LONG_REPO = "octo-enterprise-platform-team/" + "a-very-long-repository-name-" * 5 + "end"
LONG_TEAMS = "teams:19:" + "Wq" * 60 + "@thread.tacv2/19:" + "Mm" * 40 + "@thread.tacv2"


def inside(inner: dict[str, float], box: dict[str, float]) -> bool:
    """Whether the ``x``/``y``/``width``/``height`` box ``inner`` lies strictly inside ``box``."""
    return (box["x"] < inner["x"] < inner["x"] + inner["width"] < box["x"] + box["width"]
            and box["y"] < inner["y"] < inner["y"] + inner["height"] < box["y"] + box["height"])


def long_chain() -> dict[str, Any]:
    """A chain of the shape ``LineageService.explore`` returns, with what overflows a box: a long repository
    name, a Teams channel id, a wide login; a person's account the pace rule stopped; a held-back effect."""
    person = {"login": "W" * 60, "kind": "human"}
    return {
        "chain_id": "c-long", "head": {"events": 2, "max_depth": 0, "verdicts": {"accepted": 1, "loop": 1}},
        "events": [
            {"event_id": "github:l1", "verdict": "accepted", "rule": "human", "reasons": ["human action"], "depth": 0,
             "type": "com.github.issue_comment.created", "time": "2026-01-01T00:00:01+00:00", "actor": person,
             "target": f"{LONG_REPO}#123456", "judged_automated": False},
            {"event_id": "github:l2", "parent_id": "github:l1", "via": "causal-target", "verdict": "loop",
             "rule": "pace", "depth": 0, "type": "com.github.issue_comment.created", "actor": person,
             "time": "2026-01-01T00:00:03+00:00", "target": f"{LONG_REPO}#123456",
             "reasons": ["loop: answered Reynolds 10 times in a row within 45 s of each answer (a machine's pace)"]},
        ],
        "effects": [
            {"event_id": "github:l1", "effect_kind": "comment", "target": f"{LONG_REPO}#123456", "state": "done",
             "resource_id": "comment:" + "9" * 30, "platform": "github"},
            {"event_id": "github:l1", "effect_kind": "message", "target": LONG_TEAMS, "state": "suppressed",
             "reason": "breaker open: " + "twenty writes to one target within the hour; " * 4, "platform": "teams"},
        ],
    }


def find_chromium() -> str:
    """The system Chromium (``CHROMIUM`` overrides); fails the test with the install command when absent."""
    override = os.environ.get("CHROMIUM")
    if override:
        return override
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("headless Chromium is needed: `apt-get install -y chromium` (make test and .ci/run do it)")


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once (root in CI needs --no-sandbox; no GPU on the machines)."""
    command = [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", "--disable-dev-shm-usage", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def stopped_chain() -> dict[str, Any]:
    """The chain of the arena's app-bot ping-pong loop, read from the run's store before the world closes."""
    scenario = Scenario.model_validate_json(SCENARIO.read_text(encoding="utf-8"))
    chains: list[dict[str, Any]] = []

    def grab(world: World) -> None:
        for chain_id in chain_ids(world):
            found = world.services.lineage.explore(chain_id)
            if found is not None:
                chains.append(found)

    result = asyncio.run(run_scenario(scenario, "memory", inspect=grab))
    assert result["passed"], result
    assert result["stopped"], result
    stopped = [c for c in chains if any(e["verdict"] == "loop" for e in c["events"])]
    assert len(stopped) == 1, [c["chain_id"] for c in chains]
    assert stopped[0]["chain_id"] in result["chain_ids"]
    return stopped[0]


def run_probe(page: str, script: str, tmp_path: Path, *, width: int = 960) -> Any:
    """Render ``page`` with ``script`` appended in headless Chromium at ``width``; what the script reported."""
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", script + "</body>"), encoding="utf-8")
    run = chromium(f"--window-size={width},1200", "--virtual-time-budget=2000", "--dump-dom", probed.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, "the probe did not run: " + run.stdout[-500:]
    return json.loads(html.unescape(found.group(1)))


def test_the_page_renders_the_stopped_loop_in_chromium(stopped_chain: dict[str, Any], tmp_path: Path) -> None:
    probe = run_probe(render_page(stopped_chain), PROBE, tmp_path)

    events, effects = stopped_chain["events"], stopped_chain["effects"]
    nodes = {n["id"]: n for n in probe["nodes"]}
    # One box per event and per effect, each laid out with a size and its text inside the box.
    assert sorted(nodes) == sorted([f"ev-{i}" for i in range(len(events))] + [f"fx-{i}" for i in range(len(effects))])
    for node in nodes.values():
        assert node["width"] > 100, node
        assert node["height"] > 40, node
        assert node["textWidth"] <= node["width"], node
        for line in node["lines"]:  # every line inside its box, as Chromium lays it out
            assert inside(line, node), (node["id"], line)
    # The loop: a person opened it, a bot answered Reynolds, and the guard stopped the bot at the end.
    assert (nodes["ev-0"]["verdict"], nodes["ev-0"]["rule"]) == ("accepted", "human")
    assert [nodes[f"ev-{i}"]["verdict"] for i in range(len(events))] == [e["verdict"] for e in events]
    stops = [n for n in nodes.values() if n["stop"]]
    assert [n["id"] for n in stops] == [f"ev-{len(events) - 1}"]
    stop = stops[0]
    assert stop["verdict"] == "loop"
    assert stop["rule"] in {"depth", "cycle", "amplification", "budget"}
    assert stop["stroke"] == "rgb(198, 40, 40)", stop  # drawn red
    assert all(n["stroke"] != "rgb(198, 40, 40)" for n in nodes.values() if not n["stop"])
    assert any(t == "STOPPED" for t in stop["text"])
    # Every effect hangs off the event that caused it, and the effect → next-event edges close the loop,
    # the last of them ending at the stopping point.
    wrote = [e for e in probe["edges"] if e["kind"] == "wrote"]
    caused = [e for e in probe["edges"] if e["kind"] == "caused"]
    assert len(wrote) == len(effects)
    assert all(e["from"].startswith("ev-") and e["to"].startswith("fx-") and e["length"] > 0 for e in wrote)
    assert caused
    assert all(e["from"].startswith("fx-") and e["to"].startswith("ev-") for e in caused)
    assert any(e["to"] == stop["id"] for e in caused)
    # Nodes link to the GitHub issue (and the comment an effect wrote).
    assert nodes["ev-0"]["href"].startswith("https://github.com/octo/app/issues/")
    assert all("#issuecomment-" in (nodes[f"fx-{i}"]["href"] or "") for i, e in enumerate(effects)
               if e["state"] == "done" and e["target"].startswith("octo/"))


def test_a_page_of_several_chains_fits_and_explains_itself_in_chromium(stopped_chain: dict[str, Any],
                                                                      tmp_path: Path) -> None:
    chains = [stopped_chain, long_chain()]
    found = run_probe(render_pages(chains, title="Reynolds · chains"), PAGE_PROBE, tmp_path)

    # Nothing is wider than its box or the window; every line of every box is inside the box.
    assert found["overflow"] == []
    assert found["doc"]["scrollWidth"] <= found["doc"]["innerWidth"]
    for svg in found["svgs"]:
        assert svg["right"] <= found["doc"]["innerWidth"]
        assert svg["widestLabel"] < 120  # an arrow label fits the gap between the columns
        for node in svg["nodes"]:
            box = node["rect"]
            for line in node["lines"]:
                assert inside(line, box), (node, line)
    long = {n["id"]: n for n in next(s for s in found["svgs"] if s["chain"] == "c-long")["nodes"]}
    target = long["ev-0"]["lines"][3]
    assert target["full"] == f"{LONG_REPO}#123456"
    assert target["title"] == target["full"]  # the whole text is a tooltip away
    assert target["text"].endswith("end#123456")
    assert "…" in target["text"]
    assert long["ev-1"]["actorKind"] == "automation"  # judged by the pace rule, whatever the account says
    assert long["ev-1"]["lines"][2]["text"].endswith("(automation; claimed human)")

    # Why each chain stopped is on the page, not inside the collapsed tables.
    stops = {(s["chain"], s["node"]): s for s in found["stops"]}
    assert set(stops) == {(stopped_chain["chain_id"], f"ev-{len(stopped_chain['events']) - 1}"),
                          ("c-long", "ev-1"), ("c-long", "fx-1")}
    for stop in stops.values():
        assert stop["visible"], stop
        assert not stop["inDetails"], stop
        assert stop["height"] > 10, stop
    assert "a machine's pace" in stops[("c-long", "ev-1")]["text"]
    assert "breaker open" in stops[("c-long", "fx-1")]["text"]

    # The summary table on top: one row per chain, stopped first, each linked to its drawing.
    assert [r["chain"] for r in found["rows"]] == [stopped_chain["chain_id"], "c-long"]
    assert all(r["visible"] and r["target"] == r["chain"] for r in found["rows"])
    assert found["rows"][1]["cells"][2:] == ["2", "2", "stopped at ev-1 (pace)"]

    # Every word a box, an arrow or a stop reason uses is in the legend, laid out and explained.
    legend = {(e["group"], e["word"]): e for e in found["legend"]}
    used = {("rule", "pace"), ("rule", "depth"), ("rule", "human"), ("rule", "self"), ("via", "marker"),
            ("via", "causal-text"), ("via", "causal-target"), ("arrow", "wrote"), ("arrow", "caused"),
            ("state", "suppressed"), ("state", "done"), ("kind", "automation"), ("kind", "bot"),
            ("verdict", "loop"), ("verdict", "self")}
    assert used <= set(legend)
    assert all(e["visible"] and e["height"] > 0 and e["text"] for e in legend.values())


def test_the_page_loads_nothing_from_elsewhere(stopped_chain: dict[str, Any]) -> None:
    page = render_page(stopped_chain)
    assert "<script" not in page
    assert not re.search(r'(?:src|href)="(?!https://github\.com/|https://teams\.microsoft\.com/|#)', page)
    assert "@import" not in page
    assert "url(http" not in page


def test_screenshot_of_the_stopped_loop(stopped_chain: dict[str, Any], tmp_path: Path) -> None:
    markup = render_page(stopped_chain, title="Reynolds · a bot ping-pong the loop guard stopped")
    page = tmp_path / "stopped-loop.html"
    page.write_text(markup, encoding="utf-8")
    height = int(run_probe(markup, PAGE_PROBE, tmp_path)["doc"]["height"])  # the whole page, legend included
    target = SCREENSHOT if (os.environ.get("REYNOLDS_UPDATE_SCREENSHOTS") == "1" or not SCREENSHOT.exists()) \
        else tmp_path / "stopped-loop.png"
    run = chromium(f"--window-size=960,{height}", f"--screenshot={target}", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, tall = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, tall) == (960, height)
    assert len(data) > 20_000  # a drawing, not a blank page
