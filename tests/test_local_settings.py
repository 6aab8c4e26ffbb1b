"""The local tools read the app's settings the way the app does: ``tools.arena`` and ``tools.simulate`` take the
``LOOP_*`` settings from the environment over ``local.settings.json``'s ``Values`` (Core Tools' precedence), so
``LOOP_MAX_AUTOMATED_DEPTH=2 make arena`` changes what the arena reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.errors import ConfigurationError
from shared.settings import app_environment, local_settings_values
from tools import arena, simulate
from tools.local_settings import honoured_settings

ROOT = Path(__file__).resolve().parents[1]
PING_PONG = str(ROOT / "samples" / "arena" / "app-bot-ping-pong.json")


def _no_loop_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A clean slate: no LOOP_* variable and no local.settings.json in the working directory."""
    import os

    for name in list(os.environ):
        if name.startswith("LOOP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _arena_line(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert arena.main([PING_PONG]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_loop_depth_from_the_environment_and_local_settings_changes_the_arena(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _no_loop_env(monkeypatch, tmp_path)
    default = _arena_line(capsys)
    assert default["reynolds_effects"] == 3
    assert default["verdicts"] == {"accepted": 3, "loop": 1, "self": 3}

    monkeypatch.setenv("LOOP_MAX_AUTOMATED_DEPTH", "2")
    shallow = _arena_line(capsys)
    assert shallow["reynolds_effects"] == 2
    assert shallow["verdicts"] == {"accepted": 2, "loop": 1, "self": 2}

    # local.settings.json's Values count as well, and the environment wins over them (func start's precedence).
    (tmp_path / "local.settings.json").write_text(json.dumps(
        {"IsEncrypted": False, "Values": {"LOOP_MAX_AUTOMATED_DEPTH": "2", "GITHUB_API_URL": "https://api.github.com"}}))
    monkeypatch.delenv("LOOP_MAX_AUTOMATED_DEPTH")
    assert _arena_line(capsys)["reynolds_effects"] == 2
    monkeypatch.setenv("LOOP_MAX_AUTOMATED_DEPTH", "4")
    assert _arena_line(capsys)["reynolds_effects"] == 3


def test_only_loop_settings_are_taken_and_an_empty_value_is_unset(tmp_path: Path) -> None:
    file = tmp_path / "local.settings.json"
    file.write_text(json.dumps({"Values": {"LOOP_CHAIN_BUDGET": "5", "LOOP_LINKED_SCOPES": "",
                                           "GITHUB_API_URL": "https://api.github.com", "AZURE_OPENAI_ENDPOINT": "x"}}))
    assert honoured_settings({"LOOP_MAX_CHILDREN": "3", "LOOP_CHAIN_BUDGET": ""}, file) == {
        "LOOP_CHAIN_BUDGET": "5", "LOOP_MAX_CHILDREN": "3"}
    assert app_environment({"LOOP_CHAIN_BUDGET": "7"}, file)["LOOP_CHAIN_BUDGET"] == "7"
    assert local_settings_values(tmp_path / "absent.json") == {}


def test_a_value_the_app_refuses_stops_the_tools_naming_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _no_loop_env(monkeypatch, tmp_path)
    with pytest.raises(ConfigurationError, match="LOOP_MAX_AUTOMATED_DEPTH"):
        honoured_settings({"LOOP_MAX_AUTOMATED_DEPTH": "0"}, None)
    monkeypatch.setenv("LOOP_MAX_AUTOMATED_DEPTH", "zero")
    sample = str(ROOT / "samples" / "issues-opened.json")
    with pytest.raises(SystemExit) as stopped:
        simulate.main([sample])
    assert stopped.value.code == 2
    assert "simulate: setting LOOP_MAX_AUTOMATED_DEPTH is invalid" in capsys.readouterr().err
    (tmp_path / "local.settings.json").write_text("{not json")
    monkeypatch.delenv("LOOP_MAX_AUTOMATED_DEPTH")
    with pytest.raises(ConfigurationError, match="local.settings.json"):
        honoured_settings({})
