"""``python -m tools.simulate``: the command line as a developer runs it (a subprocess, from the repo root)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from shared.platforms.github.events import signature_for
from tools.world import SIMULATE_WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SAMPLE = json.loads((SAMPLES / "issues-opened.json").read_text(encoding="utf-8"))
KNOWN_VERDICTS = {"accepted", "duplicate", "self", "loop", "ignored", "rejected"}


def simulate(*args: str, secret: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_WEBHOOK_SECRET"}
    if secret is not None:
        env["GITHUB_WEBHOOK_SECRET"] = secret
    return subprocess.run([sys.executable, "-m", "tools.simulate", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def lines_of(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """Every stdout line, each parsed as JSON (a non-JSON line fails the test)."""
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    return [json.loads(line) for line in lines]


def delivery(number: int, signature: str = "auto") -> dict[str, Any]:
    """A recorded ``issues.opened`` delivery about a fresh issue (body kept as raw text, as GitHub sent it)."""
    body = json.loads(json.dumps(SAMPLE["body"]))
    body["issue"]["number"] = number
    body["issue"]["id"] = 5_000_000 + number  # distinct issues have distinct ids (the event's identity)
    body["issue"]["title"] = f"Issue {number}: the app crashes"
    body["issue"]["body"] = f"Report {number}: it fails with an error."
    raw = json.dumps(body)
    if signature == "default-secret":
        signature = signature_for(SIMULATE_WEBHOOK_SECRET, raw.encode())
    elif signature.startswith("secret:"):
        signature = signature_for(signature.removeprefix("secret:"), raw.encode())
    headers = {**SAMPLE["headers"], "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": signature}
    return {"source": "github", "headers": headers, "body": raw}


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


def test_sample_deliveries() -> None:
    sample_file = SAMPLES / "deliveries.jsonl"
    items = [json.loads(line) for line in sample_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    result = simulate(str(sample_file.relative_to(ROOT)))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = lines_of(result)
    assert len(lines) == len(items)
    first, second = lines[0], lines[1]
    assert (first["status"], first["verdict"], first["runtime_status"]) == (202, "accepted", "Completed")
    assert len(first["effects"]) == 1
    assert first["effects"][0]["platform"] == "github"
    assert first["effects"][0]["kind"] == "comment"
    assert first["effects"][0]["target"] == "octo/app#7"
    assert (second["status"], second["verdict"], second["effects"]) == (200, "duplicate", [])
    assert second["delivery"] == first["delivery"]
    assert second["instance_id"] == first["instance_id"]
    for line in lines:
        assert line["verdict"] in KNOWN_VERDICTS
        assert set(line) >= {"delivery", "status", "verdict", "reason", "instance_id", "runtime_status", "effects"}


def test_missing_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    result = simulate(str(missing))
    assert result.returncode == 2
    assert "nope.jsonl" in result.stderr
    assert "cannot read" in result.stderr
    assert result.stdout == ""


def test_bad_json_line_exits_2_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(delivery(1)) + "\n{not json\n", encoding="utf-8")
    result = simulate(str(bad))
    assert result.returncode == 2
    assert "bad.jsonl:2" in result.stderr
    assert "bad JSON" in result.stderr
    assert result.stdout == ""  # nothing was delivered: the input is checked first


def test_bad_signature_is_a_401_line_not_a_failure(tmp_path: Path) -> None:
    items = [delivery(11, signature="sha256=" + "0" * 64), delivery(12, signature="default-secret"), delivery(13)]
    result = simulate(str(write_jsonl(tmp_path / "mixed.jsonl", items)))
    assert result.returncode == 0, result.stderr
    lines = lines_of(result)
    assert [(line["status"], line["verdict"]) for line in lines] == [(401, "rejected"), (202, "accepted"),
                                                                      (202, "accepted")]
    assert lines[0]["effects"] == []
    assert lines[0]["instance_id"] is None
    assert SIMULATE_WEBHOOK_SECRET not in result.stdout + result.stderr


def test_webhook_secret_from_the_environment_is_what_auto_signs_with(tmp_path: Path) -> None:
    custom = f"custom-{uuid.uuid4().hex}"
    items = [delivery(21), delivery(22, signature="default-secret"), delivery(23, signature=f"secret:{custom}")]
    result = simulate(str(write_jsonl(tmp_path / "custom.jsonl", items)), secret=custom)
    assert result.returncode == 0, result.stderr
    lines = lines_of(result)
    assert [line["status"] for line in lines] == [202, 401, 202]
    assert lines[0]["runtime_status"] == "Completed"
    assert len(lines[0]["effects"]) == 1
    assert custom not in result.stdout + result.stderr


def test_every_line_names_its_chain_and_the_explorer_draws_it(tmp_path: Path) -> None:
    result = simulate("samples/deliveries.jsonl", "samples/teams-servicebus.jsonl", "samples/task-fanout.json")
    assert result.returncode == 0, result.stderr
    lines = lines_of(result)
    for line in lines:
        assert "chain_id" in line
        assert set(line) >= {"status", "verdict", "reason", "instance_id", "runtime_status", "effects"}
    accepted = [line for line in lines if line["verdict"] == "accepted"]
    assert accepted
    assert all(str(line["chain_id"]).startswith("c-") for line in accepted)
    # A redelivery names the chain its first delivery joined.
    assert lines[1]["verdict"] == "duplicate"
    assert lines[1]["chain_id"] == lines[0]["chain_id"]
    # The progress lines on stderr say it too, for a person reading the run.
    assert f"(chain {lines[0]['chain_id']})" in result.stderr
    # The task line counts GitHub writes as its ``effects`` list them (one per write request).
    task = lines[-1]
    assert task["reason"].endswith(f", {len(task['effects'])} GitHub writes"), task["reason"]

    page = tmp_path / "chain.html"
    explore = subprocess.run([sys.executable, "-m", "tools.explore", "--out", str(page), "--chain",
                              lines[0]["chain_id"], "samples/deliveries.jsonl"], cwd=ROOT, capture_output=True,
                             text=True, timeout=120, check=False)
    assert explore.returncode == 0, explore.stderr
    assert explore.stdout.strip() == str(page)
    text = page.read_text(encoding="utf-8")
    assert f'data-chain-id="{lines[0]["chain_id"]}"' in text
    assert "<svg" in text


def test_empty_input_is_a_clear_error_not_a_silent_success(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    result = simulate(str(empty))
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"no delivery in {empty}" in result.stderr
    assert "Traceback" not in result.stderr


def test_cosmos_store_without_npm_ci_exits_2_saying_what_to_run(tmp_path: Path) -> None:
    # A checkout without node_modules: the tool runs from a copy of the code, as a fresh clone would.
    clone = tmp_path / "clone"
    for part in ("shared", "triggers", "orchestrators", "activities", "tools", "samples"):
        shutil.copytree(ROOT / part, clone / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("function_app.py", "host.json", "pyproject.toml"):
        shutil.copy(ROOT / name, clone / name)
    result = subprocess.run([sys.executable, "-m", "tools.simulate", "--store", "cosmos", "samples/deliveries.jsonl"],
                            cwd=clone, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "npm ci" in result.stderr
    assert result.stdout == ""


def test_every_line_lists_the_write_requests_reynolds_made(tmp_path: Path) -> None:
    # Issue 21's "writes": each GitHub write request in order, with the sha256 of its body; a duplicate writes none.
    first = delivery(4242)
    items = [first, first]
    result = simulate(str(write_jsonl(tmp_path / "writes.jsonl", items)))
    assert result.returncode == 0, result.stderr
    answered, duplicate = lines_of(result)
    assert answered["verdict"] == "accepted"
    assert duplicate["verdict"] == "duplicate"
    assert duplicate["writes"] == []
    comments = [w for w in answered["writes"] if w["kind"] == "comment"]
    assert len(comments) == len([e for e in answered["effects"] if e["kind"] == "comment"]) >= 1
    for write in answered["writes"]:
        assert write["platform"] == "github"
        assert write["method"] in {"POST", "PATCH", "PUT", "DELETE"}
        assert write["path"].startswith("/repos/")
        assert len(write["sha256"]) == 64


def test_a_malformed_model_script_or_repo_files_rejects_only_that_item(tmp_path: Path) -> None:
    bad_model = {**delivery(4243), "model": [{"nonsense": 1}]}
    bad_files = {**delivery(4244), "repo_files": {"octo/app": {".github/reynolds.yml": 7}}}
    good = {**delivery(4245), "model": [{"content": "unused replies are allowed"}]}
    result = simulate(str(write_jsonl(tmp_path / "bad.jsonl", [bad_model, bad_files, good])))
    assert result.returncode == 0, result.stderr
    model_line, files_line, good_line = lines_of(result)
    assert model_line["verdict"] == files_line["verdict"] == "rejected"
    assert model_line["reason"].startswith("malformed item:")
    assert files_line["reason"].startswith("malformed item:")
    assert good_line["verdict"] == "accepted"
    assert good_line["model_replies_used"] == 0


def test_a_journal_of_a_simulate_run_replays_through_whatif(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    result = simulate("--journal", str(journal), "samples/deliveries.jsonl")
    assert result.returncode == 0, result.stderr
    same = subprocess.run([sys.executable, "-m", "tools.whatif", "--from", str(journal)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(same.stdout.splitlines()[-1])["summary"]["changed"] == 0
    lower = subprocess.run([sys.executable, "-m", "tools.whatif", "--from", str(journal), "--set",
                            "LOOP_MAX_AUTOMATED_DEPTH=1"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           check=True)
    *changed, summary = (json.loads(line) for line in lower.stdout.splitlines())
    assert summary["summary"]["changed"] == len(changed) >= 1
    assert all(line["verdict"][1] == "loop" for line in changed)
