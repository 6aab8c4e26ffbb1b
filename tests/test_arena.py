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
# The promise (README): a loop stops within 3 Reynolds effects, an amplifier within 7; the documented exception,
# a bot on a user account writing new text each time at a person's pace, within 12.
USER_BOT_NEW_TEXT = {"user-account-bot-new-text.json", "issue-hopping-user-bot.json",
                     "org-hopping-user-bot-slow-new-text.json"}
AMPLIFIERS = {"amplifier.json", "cross-repo-amplifier.json", "loop-under-background-load.json",
              "app-bot-and-slow-user-bot-taking-turns.json", "amplifier-across-unlinked-organisations.json"}
#: Scenarios with background load run here with at most this many background threads (``make arena``: all).
BACKGROUND_SAMPLE = 40
#: Issue 19's scenarios the loop guard in this tree still fails (people held, automations not stopped); loop guard
#: v3 is built to pass them. Strict: a scenario that starts passing fails here until it is taken off this list.
V3_PENDING = {
    "amplifier-across-unlinked-organisations", "app-bot-and-three-user-accounts-taking-turns",
    "five-accounts-taking-turns",
    "org-hopping-app-bot-unlinked", "org-hopping-user-bot-unlinked-slow", "paraphrasing-relay-on-user-accounts",
    "servicebus-consumer-republishes-own-text-as-human",
    "user-bot-new-text-alternating-30s-50s",
}


def _bundle() -> list[object]:
    pending = pytest.mark.xfail(strict=True, reason="issue 19 open: not yet within its bound on loop guard v3")
    return [pytest.param(p, id=p.stem, marks=[pending] if p.stem in V3_PENDING else []) for p in SCENARIOS]


def _load(path: Path) -> Scenario:
    return Scenario.model_validate_json(path.read_text(encoding="utf-8"))


def _promise(path: Path) -> int:
    return 12 if path.name in USER_BOT_NEW_TEXT else 7 if path.name in AMPLIFIERS else 3


def _sampled(scenario: Scenario) -> tuple[Scenario, int]:
    """A background-load scenario with fewer background threads; and how many answers to people it expects."""
    start, people = [], 0
    for opening in scenario.start:
        kept = min(opening.repeat, BACKGROUND_SAMPLE) if opening.repeat > 1 else 1
        people += kept if opening.repeat > 1 else 0
        start.append(opening.model_copy(update={"repeat": kept}))
    return scenario.model_copy(update={"start": start}), people


def test_bundle_covers_the_required_scenarios() -> None:
    names = {p.stem for p in SCENARIOS}
    assert names >= V3_PENDING
    assert len(SCENARIOS) >= 12
    for required in ("self-echo", "app-bot-ping-pong", "user-account-bot-echo", "quote-reply-bot", "mutating-echo",
                     "slow-loop", "amplifier", "two-bots-around-reynolds", "human-conversation", "thirty-humans",
                     "redelivery-storm", "ci-bot-thread"):
        assert required in names


@pytest.mark.parametrize("path", _bundle())
def test_scenario_passes_on_memory_store(path: Path) -> None:
    scenario = _load(path)
    people = 0
    if scenario.humans_never_blocked:
        scenario, people = _sampled(scenario)
    result = asyncio.run(run_scenario(scenario, "memory"))
    if scenario.expect == "loop":
        assert result["stopped"]
        # Answers to the people in the background (each answered once) plus the loop's own.
        assert result["reynolds_effects"] - people <= _promise(path), result
        if not scenario.humans_never_blocked:  # no file claims a looser bound than the promise
            assert (scenario.max_reynolds_effects or 3) <= _promise(path)
    if scenario.humans_never_blocked:
        assert result["blocked_people_events"] == 0  # the people; a scripted bot on a user account may be held
        assert result["chain_id"] is not None  # the loop was stopped, not merely quiet
        return
    assert result["passed"], result
    if scenario.expect == "legit":
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
    # chain ids (and a note beside blocked_human_events when it needs one) and the write requests ("writes",
    # issue 21) were added compatibly.
    assert set(lines[0]) - {"blocked_human_events_note"} == {
        "name", "expect", "reynolds_effects", "notes", "events", "verdicts", "stopped", "blocked_human_events",
        "passed", "chain_id", "chain_ids", "chains", "writes"}
    assert lines[1]["chain_id"] in lines[1]["chain_ids"]  # the chain the loop guard stopped
    assert proc.returncode == 1


def test_cli_rejects_an_invalid_scenario_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "expect": "maybe"}')
    proc = subprocess.run([sys.executable, "-m", "tools.arena", str(bad)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "not a valid scenario" in proc.stderr


TEAMS_SCENARIOS = sorted((ROOT / "samples" / "arena").glob("teams-*.json"))


@pytest.mark.parametrize("path", TEAMS_SCENARIOS, ids=[p.stem for p in TEAMS_SCENARIOS])
def test_teams_scenario_passes_through_the_bot_door(path: Path) -> None:
    """Each bundled Teams scenario with ``"teams_door": "bot"``: Teams messages reach Reynolds at
    ``POST /api/messages``, Reynolds answers through the Bot Connector, and Graph is never asked to post."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    scenario = Scenario.model_validate({**raw, "teams_door": "bot"})
    posts: list[int] = []

    def inspect(world: object) -> None:
        graph = world.graph  # type: ignore[attr-defined]
        posts.append(len(graph.requests_to("POST", r"/(messages|replies)$")))

    result = asyncio.run(run_scenario(scenario, "memory", inspect=inspect))
    assert result["passed"], result
    assert result["events"] > 0
    if scenario.expect == "legit":
        assert result["blocked_human_events"] == 0
    assert posts == [0]
