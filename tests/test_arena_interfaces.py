"""``tools.arena``'s interfaces for later issues: ``"writes"`` on every result, ``"model"``/``"repo_files"`` seeds
checked before anything runs, and ``--journal`` for ``tools.whatif``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PING_PONG = ROOT / "samples" / "arena" / "app-bot-ping-pong.json"


def _arena(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.arena", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_result_lists_each_write_and_the_journal_replays(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    result = _arena("--journal", str(journal), str(PING_PONG))
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert len(line["writes"]) == line["reynolds_effects"] + line["notes"]
    assert {w["method"] for w in line["writes"]} == {"POST"}
    assert all(w["path"] == "/repos/octo/app/issues/7/comments" for w in line["writes"])
    replay = subprocess.run([sys.executable, "-m", "tools.whatif", "--from", str(journal)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(replay.stdout.splitlines()[-1])["summary"]["changed"] == 0


def test_a_malformed_model_script_is_refused_before_the_scenario_runs(tmp_path: Path) -> None:
    scenario = json.loads(PING_PONG.read_text(encoding="utf-8"))
    scenario["model"] = [{"content": "ok", "json": {}}]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(scenario), encoding="utf-8")
    result = _arena(str(bad))
    assert result.returncode == 2
    assert "model[1] has keys" in result.stderr  # replies are numbered from 1
    assert result.stdout == ""


def test_journal_takes_one_scenario(tmp_path: Path) -> None:
    result = _arena("--journal", str(tmp_path / "j.jsonl"), str(PING_PONG), str(PING_PONG))
    assert result.returncode == 2
    assert "one scenario" in result.stderr
