"""The chain explorer page in a real browser: headless Chromium (Debian's ``chromium``) renders the page of a
loop the arena stopped, and the drawing is checked from inside the browser (boxes laid out, arrows present,
the stopping point drawn red).

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

from shared.chain_view import render_page
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


def test_the_page_renders_the_stopped_loop_in_chromium(stopped_chain: dict[str, Any], tmp_path: Path) -> None:
    page = render_page(stopped_chain)
    probed = tmp_path / "chain.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")

    run = chromium("--virtual-time-budget=2000", "--dump-dom", probed.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, "the probe did not run: " + run.stdout[-500:]
    probe = json.loads(html.unescape(found.group(1)))

    events, effects = stopped_chain["events"], stopped_chain["effects"]
    nodes = {n["id"]: n for n in probe["nodes"]}
    # One box per event and per effect, each laid out with a size and its text inside the box.
    assert sorted(nodes) == sorted([f"ev-{i}" for i in range(len(events))] + [f"fx-{i}" for i in range(len(effects))])
    for node in nodes.values():
        assert node["width"] > 100, node
        assert node["height"] > 40, node
        assert node["textWidth"] <= node["width"], node
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


def test_the_page_loads_nothing_from_elsewhere(stopped_chain: dict[str, Any]) -> None:
    page = render_page(stopped_chain)
    assert "<script" not in page
    assert not re.search(r'(?:src|href)="(?!https://github\.com/|https://teams\.microsoft\.com/|#)', page)
    assert "@import" not in page
    assert "url(http" not in page


def test_screenshot_of_the_stopped_loop(stopped_chain: dict[str, Any], tmp_path: Path) -> None:
    page = tmp_path / "stopped-loop.html"
    page.write_text(render_page(stopped_chain, title="Reynolds · a bot ping-pong the loop guard stopped"),
                    encoding="utf-8")
    height = 260 + 86 * len(stopped_chain["events"])
    target = SCREENSHOT if (os.environ.get("REYNOLDS_UPDATE_SCREENSHOTS") == "1" or not SCREENSHOT.exists()) \
        else tmp_path / "stopped-loop.png"
    run = chromium(f"--window-size=960,{height}", f"--screenshot={target}", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, tall = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, tall) == (960, height)
    assert len(data) > 20_000  # a drawing, not a blank page
