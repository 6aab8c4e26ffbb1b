"""tools.whatif: a recorded arena run replayed through the real loop guard with changed settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tools import whatif

SCENARIO = Path("samples/arena/app-bot-ping-pong.json")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    path = tmp_path_factory.mktemp("whatif") / "journal.jsonl"
    result, journal = whatif.record_arena(SCENARIO, path)
    assert journal.records, "the writer recorded nothing"
    return result, path


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    code = whatif.main(list(argv))
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_the_writer_records_every_decision_and_effect_without_changing_the_run(
        recorded: tuple[dict[str, Any], Path]) -> None:
    result, path = recorded
    records = _records(path)
    assert records[0]["kind"] == "settings"
    assert records[0]["settings"]["LOOP_MAX_AUTOMATED_DEPTH"] == "4"
    assert records[0]["settings"]["REYNOLDS_ROUTING_PROFILE"] == "reply-all"
    assert "reynolds-simulate-marker-key" not in path.read_text(encoding="utf-8")  # a fingerprint, not the key
    decisions = [r for r in records if r["kind"] == "decision"]
    effects = [r for r in records if r["kind"] == "effect"]
    assert result["passed"] is True  # the arena's own verdict on the run is unchanged by recording
    assert len(decisions) == result["events"]
    assert sum(result["verdicts"].values()) == len(decisions)
    assert len(effects) == result["reynolds_effects"]
    assert [r["seq"] for r in records[1:]] == list(range(1, len(records)))
    assert all(r["envelope"]["id"] == r["event_id"] for r in decisions)


def test_recorded_settings_change_nothing(recorded: tuple[dict[str, Any], Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _, path = recorded
    code, lines = _run(capsys, "--from", str(path))
    assert code == 0
    assert lines == [{"summary": {**lines[-1]["summary"], "changed": 0, "newly_refused": 0, "newly_accepted": 0,
                                  "pruned": 0}}]
    decisions = [r for r in _records(path) if r["kind"] == "decision"]
    assert lines[-1]["summary"]["decisions"] == len(decisions)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_a_lower_depth_cap_reports_exactly_the_decisions_that_change(
        recorded: tuple[dict[str, Any], Path], capsys: pytest.CaptureFixture[str], depth: int) -> None:
    _, path = recorded
    decisions = [r for r in _records(path) if r["kind"] == "decision"]
    # By hand from the journal: the first automated event the arena accepted deeper than the new cap is refused
    # by the depth rule; everything downstream of it in its chain (Reynolds' answer that is no longer written,
    # the bot's reply to it, …) is pruned, not refused.
    first = next(r for r in decisions if r["verdict"] == "accepted" and r["depth"] > depth)
    later = [r["event_id"] for r in decisions if r["seq"] > first["seq"] and r["chain_id"] == first["chain_id"]]
    code, lines = _run(capsys, "--from", str(path), "--set", f"LOOP_MAX_AUTOMATED_DEPTH={depth}")
    assert code == 0
    *changes, summary = lines
    assert changes == [{"event_id": first["event_id"], "chain_id": first["chain_id"],
                        "verdict": ["accepted", "loop"], "rule": [first["rule"], "depth"]}]
    assert summary["summary"]["changed"] == 1
    assert summary["summary"]["newly_refused"] == 1
    assert summary["summary"]["newly_accepted"] == 0
    assert summary["summary"]["pruned_event_ids"] == later
    assert summary["summary"]["pruned"] == len(later) > 0


def test_a_higher_cap_hands_the_refused_event_to_the_next_rule(
        recorded: tuple[dict[str, Any], Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, path = recorded
    refused = [r for r in _records(path) if r["kind"] == "decision" and r["rule"] == "depth"]
    code, lines = _run(capsys, "--from", str(path), "--set", "LOOP_MAX_AUTOMATED_DEPTH=10",
                       "--set", "LOOP_CHAIN_BUDGET=100")
    assert code == 0
    *changes, summary = lines
    # Without the depth cap the echo bot's third round is the same automated action again: the cycle rule
    # refuses it (a rule change, still refused: not newly accepted).
    assert changes == [{"event_id": r["event_id"], "chain_id": r["chain_id"], "verdict": ["loop", "loop"],
                        "rule": ["depth", "cycle"]} for r in refused]
    assert summary["summary"]["newly_accepted"] == summary["summary"]["newly_refused"] == 0


def test_bad_input_is_refused_with_a_clear_error(tmp_path: Path, recorded: tuple[dict[str, Any], Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _, path = recorded
    assert whatif.main(["--from", str(path), "--set", "LOOP_MAX_AUTOMATED_DEPTH=0"]) == 2
    assert "LOOP_MAX_AUTOMATED_DEPTH" in capsys.readouterr().err
    assert whatif.main(["--from", str(path), "--set", "NOT_A_SETTING=1"]) == 2
    assert "NOT_A_SETTING" in capsys.readouterr().err
    assert whatif.main(["--from", str(path), "--set", "novalue"]) == 2
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"kind": "settings", "settings": {}}\n{"kind": "decision", "event_id": "x"}\n')
    assert whatif.main(["--from", str(broken)]) == 2
    assert "broken.jsonl:2" in capsys.readouterr().err
    assert whatif.main(["--from", str(tmp_path / "missing.jsonl")]) == 2


def test_a_journal_of_another_key_needs_that_key(tmp_path: Path, recorded: tuple[dict[str, Any], Path]) -> None:
    _, path = recorded
    records = _records(path)
    records[0]["marker_key_sha256"] = whatif.key_fingerprint("production-key")
    other = tmp_path / "other.jsonl"
    other.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    journal = whatif.read_journal(other)
    with pytest.raises(whatif.ConfigurationError, match="REYNOLDS_MARKER_KEY"):
        whatif.replay(journal, {}, environ={})
    outcome = whatif.replay(journal, {}, environ={"REYNOLDS_MARKER_KEY": "production-key"})
    assert outcome.summary["decisions"] > 0


@pytest.mark.parametrize("scenario", ["cross-platform-four-hop", "human-conversation"])
def test_other_recorded_arena_runs_replay_unchanged(tmp_path: Path, scenario: str) -> None:
    _, journal = whatif.record_arena(Path(f"samples/arena/{scenario}.json"), tmp_path / "j.jsonl")
    outcome = whatif.replay(whatif.read_journal(tmp_path / "j.jsonl"), {})
    assert outcome.changes == []
    assert outcome.summary["decisions"] == sum(r["kind"] == "decision" for r in journal.records) > 0


def test_a_recorded_simulate_run_replays_unchanged(tmp_path: Path) -> None:
    lines, journal = whatif.record_simulate(["samples/deliveries.jsonl", "samples/teams-servicebus.jsonl"],
                                            tmp_path / "sim.jsonl")
    assert lines
    outcome = whatif.replay(whatif.read_journal(tmp_path / "sim.jsonl"), {})
    assert outcome.changes == []
    assert outcome.summary["decisions"] == sum(r["kind"] == "decision" for r in journal.records) > 0


def test_the_writer_leaves_the_lineage_service_as_it_found_it() -> None:
    from shared.services import Services
    from shared.settings import Settings
    from shared.store.memory import MemoryStore

    services = Services(settings=Settings.model_validate({"LINEAGE_STORE": "memory"}), store=MemoryStore())
    lineage = services.lineage
    with whatif.journal_to(services, None) as journal:
        assert "decide" in vars(lineage)
    assert not {"decide", "hold", "refuse", "open_chain", "complete_effect", "suppress_effect"} & set(vars(lineage))
    assert journal.header["marker_key_sha256"] is None
