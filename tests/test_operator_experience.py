"""What an operator meets first: the locks the tests run on, the make targets, the version and liveness probe
of a deployed app, and README snippets that work without an activated venv."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import azure.functions as func
import pytest

from tools.world import build_world, call_function

ROOT = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.M)


def pins(path: Path) -> dict[str, str]:
    """``name → version`` of every ``name==version`` line of a lock (names normalised as PEP 503 says)."""
    return {re.sub(r"[-_.]+", "-", m.group(1)).lower(): m.group(2) for m in _PIN.finditer(path.read_text())}


# --- deploy what was tested ------------------------------------------------------------------------------------

def test_the_app_lock_pins_every_package_with_hashes() -> None:
    text = (ROOT / "requirements.txt").read_text()
    entries = [block for block in re.split(r"\n(?=[A-Za-z0-9])", text) if _PIN.match(block)]
    # One entry per package, plus the plain twins of pins with extras that pip < 23.3 needs (tools/lock_pip_compat.py).
    twins = text.count("plain twin of the entry above")
    assert len(entries) - twins == len(pins(ROOT / "requirements.txt")) > 20
    for block in entries:
        assert "--hash=sha256:" in block, block.splitlines()[0]
    # Every direct requirement of requirements.in is in the lock.
    wanted = [re.split(r"[<>=!~\[ ;#]", line.strip())[0].lower() for line in (ROOT / "requirements.in").read_text()
              .splitlines() if line.strip() and not line.startswith("#")]
    assert wanted
    assert set(wanted) <= set(pins(ROOT / "requirements.txt"))
    assert "checkov" not in pins(ROOT / "requirements.txt")


def test_the_dev_lock_keeps_the_runtime_versions_and_leaves_checkov_out() -> None:
    runtime, dev = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-dev.txt")
    moved = {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version}
    assert moved == {}, f"requirements-dev.txt moves runtime packages (lock, dev): {moved}"
    assert "checkov" not in dev
    assert "checkov" in pins(ROOT / "requirements-checkov.txt")


def test_tests_run_on_exactly_the_versions_azure_deploys() -> None:
    """The interpreter running this suite has every package of requirements.txt at its locked version.

    Fails when the test venv drifted (a tool's pins moved a runtime package, or the lock changed without a
    reinstall): `make test` reinstalls from the locks; checkov lives in its own venv (.venv-tools)."""
    drift = {}
    for name, version in pins(ROOT / "requirements.txt").items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            drift[name] = (version, installed)
    assert drift == {}, f"installed versions differ from requirements.txt (locked, installed): {drift}"


def test_mypy_does_not_analyse_msgraph_internals() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    rows = [o for o in config.get("overrides", []) if "msgraph.*" in o.get("module", [])]
    assert rows
    assert rows[0]["follow_imports"] == "skip"


# --- make ----------------------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_simulate_stdout_is_json_lines_only(tmp_path: Path) -> None:
    """`make simulate > out.jsonl` gives valid JSON Lines: make echoes no command, installs talk on stderr."""
    stamp = tmp_path / "installed"
    stamp.touch()  # the venv is this interpreter, already installed: make runs only the simulation
    result = subprocess.run(["make", "--no-print-directory", "simulate", f"PY={sys.executable}",
                             f"RUN_STAMP={stamp}"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) > 5
    for line in lines:
        assert isinstance(json.loads(line), dict), line


def test_every_install_step_of_the_makefile_talks_on_stderr() -> None:
    """Progress lines, not --quiet, and none of them on stdout (they would corrupt `make simulate > out.jsonl`)."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(RUN_STAMP\):.*?\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe
    lines = recipe.group(1).splitlines()
    assert all(line.startswith("\t@") for line in lines)
    installs = [line for line in lines if "pip" in line or "echo" in line]
    assert installs
    assert all(line.rstrip().endswith(">&2") for line in installs)
    assert "--quiet" not in makefile
    assert "requirements-dev" not in recipe.group(1)  # the first run installs the runtime set only


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_dev_reports_a_missing_func_before_installing_anything(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("Makefile", "requirements.txt", "package.json", "package-lock.json"):
        shutil.copy(ROOT / name, clone / name)
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "make", "python3", "env", "test", "cp"):
        found = shutil.which(tool)
        if found:
            (bare / tool).symlink_to(found)
    result = subprocess.run(["make", "dev"], cwd=clone, capture_output=True, text=True, timeout=60, check=False,
                            env={"PATH": str(bare), "HOME": str(tmp_path)})
    assert result.returncode != 0
    assert "Functions Core Tools ('func') is not installed" in result.stderr
    assert not (clone / ".venv").exists()
    assert not (clone / "node_modules").exists()


# --- the deployed app ------------------------------------------------------------------------------------------

def _deployed_files() -> list[str]:
    """The files `func azure functionapp publish` / azd ships: the tracked files .funcignore does not drop."""
    patterns = [p.strip().rstrip("/") for p in (ROOT / ".funcignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    kept = []
    for path in tracked.splitlines():
        parts = path.split("/")
        if any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in patterns):
            continue
        if any(fnmatch.fnmatch(path, pattern) for pattern in patterns):
            continue
        kept.append(path)
    return kept


def test_status_version_is_known_in_the_deployed_package(tmp_path: Path) -> None:
    deployed = _deployed_files()
    assert "pyproject.toml" not in deployed  # the reason the version cannot come from there
    assert "shared/__init__.py" in deployed
    assert "triggers/http_api.py" in deployed
    for path in deployed:
        if path.endswith(".py"):
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / path, tmp_path / path)
    result = subprocess.run([sys.executable, "-c", "import shared; print(shared.__version__)"], cwd=tmp_path,
                            capture_output=True, text=True, check=True)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert result.stdout.strip() == project

    from triggers.http_api import app_version

    assert app_version() == project


async def test_liveness_is_anonymous_and_reads_nothing() -> None:
    with build_world() as world:
        before = world.services.store.requests if hasattr(world.services.store, "requests") else None
        request = func.HttpRequest("GET", "/api/health/live", headers={}, params={}, route_params={}, body=b"")
        response = await call_function("api_liveness", req=request)
        after = world.services.store.requests if hasattr(world.services.store, "requests") else None
    assert response.status_code == 200
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert json.loads(response.get_body()) == {"status": "alive", "version": project}
    assert before == after


# --- README -----------------------------------------------------------------------------------------------------

def test_readme_starts_with_the_two_setup_commands_and_names_the_first_result_time() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)\n(.*?)```", readme, re.S)
    assert first_block
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make simulate", "make test"]
    assert re.search(r"first result comes in \*\*\d+ s\*\*", readme)
    assert "docs/stopped-loop.png" in readme
    assert (ROOT / "docs" / "stopped-loop.png").exists()


def test_readme_snippets_do_not_assume_an_activated_venv() -> None:
    """A command starting with `python`/`pytest`/`mypy`/`ruff` only works inside an activated venv; the README
    says `.venv/bin/python …` (or a make target) instead."""
    readme = (ROOT / "README.md").read_text()
    bare = re.compile(r"(?:^|`)\s*(?:python3?|pytest|mypy|ruff|checkov) ")
    offenders = [line for line in readme.splitlines() if bare.search(line)]
    assert offenders == []


def test_ci_installs_chromium_when_missing() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get install" in ci
    assert "chromium" in ci
    assert os.access(ROOT / ".ci" / "run", os.X_OK) or ci.startswith("#!")


def test_the_deployed_package_has_the_lock_and_no_tool_lock() -> None:
    deployed = _deployed_files()
    assert "requirements.txt" in deployed
    assert not [p for p in deployed if p.startswith("requirements") and p != "requirements.txt"]
    assert "function_app.py" in deployed
    assert not [p for p in deployed if p.startswith(("tests/", "tools/", "docs/"))]


def test_arena_explains_blocked_user_type_events_beside_a_passed_loop() -> None:
    import asyncio

    from tools.arena import Scenario, run_scenario

    scenario = Scenario.model_validate_json((ROOT / "samples" / "arena" / "user-account-bot-echo.json").read_text())
    result = asyncio.run(run_scenario(scenario, "memory"))
    assert result["expect"] == "loop"
    assert result["passed"] is True
    assert result["blocked_human_events"] >= 1
    assert "bots on personal accounts" in result["blocked_human_events_note"]
    assert result["chain_ids"]
    assert all(c.startswith("c-") for c in result["chain_ids"])


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_explore_writes_the_page_of_the_default_loop(tmp_path: Path) -> None:
    stamp = tmp_path / "installed"
    stamp.touch()
    page = tmp_path / "chains.html"
    result = subprocess.run(["make", "--no-print-directory", "explore", f"PY={sys.executable}", f"RUN_STAMP={stamp}",
                             f"OUT={page}"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(page)
    text = page.read_text(encoding="utf-8")
    assert 'data-stop="true"' in text
    assert "1 chain, 1 stopped by the loop guard" in result.stderr
