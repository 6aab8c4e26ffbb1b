"""The loop arena's bundled scenarios: every loop stopped within its budget, no person ever blocked."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.arena import Scenario, run_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "samples" / "arena").glob("*.json"))
# A user-account bot writing new text each time is the one documented exception (README: within 12).
USER_BOT_NEW_TEXT = {"user-account-bot-new-text.json", "issue-hopping-user-bot.json"}


def _load(path: Path) -> Scenario:
    return Scenario.model_validate_json(path.read_text(encoding="utf-8"))


def test_bundle_covers_the_required_scenarios() -> None:
    names = {p.stem for p in SCENARIOS}
    assert len(SCENARIOS) >= 12
    for required in ("self-echo", "app-bot-ping-pong", "user-account-bot-echo", "quote-reply-bot", "mutating-echo",
                     "slow-loop", "amplifier", "two-bots-around-reynolds", "human-conversation", "thirty-humans",
                     "redelivery-storm", "ci-bot-thread"):
        assert required in names


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_passes_on_memory_store(path: Path) -> None:
    scenario = _load(path)
    result = asyncio.run(run_scenario(scenario, "memory"))
    assert result["passed"], result
    if scenario.expect == "loop":
        assert result["stopped"]
        assert result["reynolds_effects"] <= (12 if path.name in USER_BOT_NEW_TEXT else 3), result
    else:
        assert result["blocked_human_events"] == 0


@pytest.mark.integration
@pytest.mark.parametrize("name", ["app-bot-ping-pong", "amplifier", "redelivery-storm", "human-conversation"])
def test_scenario_passes_on_cosmos_store(name: str) -> None:
    result = asyncio.run(run_scenario(_load(ROOT / "samples" / "arena" / f"{name}.json"), "cosmos"))
    assert result["passed"], result


def test_cli_prints_one_line_per_scenario_and_exits_nonzero_on_failure(tmp_path: Path) -> None:
    failing = json.loads((ROOT / "samples" / "arena" / "app-bot-ping-pong.json").read_text())
    failing["name"], failing["max_reynolds_effects"] = "too strict", 0
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps(failing))
    proc = subprocess.run([sys.executable, "-m", "tools.arena", str(ROOT / "samples" / "arena" / "self-echo.json"),
                           str(strict)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["name"] for line in lines] == ["self-echo", "too strict"]
    assert [line["passed"] for line in lines] == [True, False]
    # chain_ids (and a note beside blocked_human_events when it needs one) were added compatibly.
    assert set(lines[0]) - {"blocked_human_events_note"} == {
        "name", "expect", "reynolds_effects", "notes", "events", "verdicts", "stopped", "blocked_human_events",
        "passed", "chain_ids"}
    assert proc.returncode == 1


def test_cli_rejects_an_invalid_scenario_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "expect": "maybe"}')
    proc = subprocess.run([sys.executable, "-m", "tools.arena", str(bad)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "not a valid scenario" in proc.stderr
