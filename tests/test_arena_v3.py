"""Issue 19's threat model in the arena: a scenario for every class, each with its bound, and a backlog judged as
if it had been decided live. (Each scenario's own pass/fail runs in tests/test_arena.py with the bundle.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from shared.store.base import Query
from tools.arena import Scenario, run_scenario
from tools.world import World

ROOT = Path(__file__).resolve().parents[1]
ARENA = ROOT / "samples" / "arena"

#: Every class of the threat model (issue 19) → its scenario files. People: 0 held. Loops: ≤ 3 effects (7 for an
#: amplifier). Among people: the people answered and the loop within 3.
PEOPLE = ("people-60-comment-once-on-outage-issue", "support-rota-three-people-answer-40-issues",
          "teams-standup-12-posts", "teams-two-person-live-chat", "same-bug-filed-in-three-repos",
          "person-opens-five-issues-at-once", "twelve-people-plus-one-within-a-minute",
          "backlog-after-30-minute-store-outage", "backlog-live-twin", "teams-backlog-after-outage",
          "teams-backlog-live-twin")
LOOPS = ("org-hopping-app-bot-unlinked", "org-hopping-user-bot-unlinked-slow", "user-bot-two-slot-status-slow",
         "user-bot-two-slot-status-21s", "user-bot-two-slot-status-25s", "user-bot-plus-one-slow",
         "user-bot-plus-one-21s", "user-bot-plus-one-25s", "user-bot-new-text-alternating-30s-50s",
         "five-accounts-taking-turns", "app-bot-and-three-user-accounts-taking-turns",
         "servicebus-consumer-republishes-own-text-as-human", "paraphrasing-relay-on-user-accounts",
         "app-bot-answers-a-day-and-a-second-later", "reactions-only-bot", "label-bot", "label-user-bot-25s")
AMPLIFIERS = ("amplifier-across-unlinked-organisations",)
AMONG_PEOPLE = ("slow-bot-in-busy-organisation", "bot-hiding-among-people")


def _load(name: str) -> Scenario:
    return Scenario.model_validate_json((ARENA / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", PEOPLE + LOOPS + AMPLIFIERS + AMONG_PEOPLE)
def test_every_class_has_a_scenario_with_its_bound(name: str) -> None:
    raw = json.loads((ARENA / f"{name}.json").read_text(encoding="utf-8"))
    scenario = _load(name)
    assert raw["_why"].startswith("Threat model") or "twin" in raw["_why"]
    assert "Bound" in raw["_why"]
    if name in PEOPLE:
        assert scenario.expect == "legit"
    elif name in LOOPS:
        assert scenario.expect == "loop"
        assert scenario.max_reynolds_effects == 3
    elif name in AMPLIFIERS:
        assert scenario.expect == "loop"
        assert scenario.max_reynolds_effects == 7
    else:
        assert scenario.expect == "loop"
        assert scenario.humans_never_blocked


def _verdicts(world: World) -> dict[str, list[str]]:
    """Each actor's verdicts, in the order their events were decided."""
    docs = world.services.lineage.store.query(Query(equals={"kind": "event"}))
    docs.sort(key=lambda d: str(d.get("created_at") or d.get("decided_at") or ""))
    verdicts: dict[str, list[str]] = {}
    for doc in docs:
        login = str((doc.get("actor") or {}).get("login"))
        verdicts.setdefault(login, []).append(str(doc.get("verdict")))
    return verdicts


def _play(name: str) -> tuple[dict[str, Any], dict[str, list[str]]]:
    seen: dict[str, list[str]] = {}
    result = asyncio.run(run_scenario(_load(name), "memory", inspect=lambda w: seen.update(_verdicts(w))))
    return result, seen


def test_the_backlog_twins_hold_the_same_events() -> None:
    backlog = json.loads((ARENA / "backlog-after-30-minute-store-outage.json").read_text(encoding="utf-8"))
    live = json.loads((ARENA / "backlog-live-twin.json").read_text(encoding="utf-8"))

    def people(spec: dict[str, Any]) -> list[tuple[str, str, float]]:
        return [(s["actor"]["login"], s["action"]["body"], s["at"] + s["action"].get("created_at_offset_seconds", 0))
                for s in spec["start"]]

    # the same people write the same words; the backlog's own timestamps are the live twin's times, within the
    # seconds the inbox and the webhook add
    assert [p[:2] for p in people(backlog)] == [p[:2] for p in people(live)]
    assert all(abs(b[2] - lv[2]) <= 15 for b, lv in zip(people(backlog), people(live), strict=True))
    assert backlog["faults"]["store"]["outages"] == [{"at": 60, "seconds": 1800}]


def test_a_backlog_after_an_outage_gets_the_same_verdicts_as_live() -> None:
    live_result, live = _play("backlog-live-twin")
    backlog_result, backlog = _play("backlog-after-30-minute-store-outage")
    people = sorted(k for k in live if k.startswith("shopper-"))
    assert len(people) == 6
    assert {k: backlog.get(k) for k in people} == {k: live[k] for k in people}
    assert live_result["blocked_human_events"] == backlog_result["blocked_human_events"] == 0


def test_a_teams_backlog_gets_the_same_verdicts_as_live() -> None:
    _, live = _play("teams-backlog-live-twin")
    _, backlog = _play("teams-backlog-after-outage")
    people = sorted(k for k in live if k.startswith("member-"))
    assert len(people) == 6
    assert {k: backlog.get(k) for k in people} == {k: live[k] for k in people}
