"""scripts/model_lifecycle.py (azd preprovision): the Azure OpenAI lifecycle rule with dates on both sides of each
boundary, the table's default is what the infra deploys, and the hook stops `azd up` (exit 1, override command shown)
before anything is created. The rule and its source: infra/model-lifecycle.json."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tools.bicepcheck.source import BicepFile

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "model_lifecycle.py"
D = dt.date.fromisoformat


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("model_lifecycle", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["model_lifecycle"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


ml = _load()
TABLE = ml.load_table()


def action(model: str, version: str, today: str, **kwargs: bool) -> str:
    return str(ml.decide(TABLE, model, version, D(today), **kwargs).action)


# ---- the rule, both sides of every boundary -----------------------------------------------------------------------
def test_gpt_5_2_is_refused_from_the_day_new_customers_lose_it() -> None:
    assert action("gpt-5.2", "2025-12-11", "2026-12-10") == "ok"
    assert action("gpt-5.2", "2025-12-11", "2026-12-11") == "refuse"
    verdict = ml.decide(TABLE, "gpt-5.2", "2025-12-11", D("2026-12-11"))
    assert "lost access on 2026-12-11" in verdict.reasons[0]


def test_the_default_is_accepted_until_its_own_new_customer_boundary() -> None:
    model, version = TABLE.default
    assert (model, version) == ("gpt-5.4-mini", "2026-03-17")
    assert action(model, version, "2026-12-08") == "ok"  # the day it was chosen
    # Accepted (a warning at most: by then the table is more than 90 days old) until 12 months after launch.
    assert action(model, version, "2027-03-08") != "refuse"  # three months later
    assert action(model, version, "2027-03-16") != "refuse"
    assert action(model, version, "2027-03-17") == "refuse"  # 12 months after launch
    verdict = ml.decide(TABLE, model, version, D("2026-12-08"))
    assert verdict.new_customers_until == D("2027-03-16")


def test_retirement_within_30_days_refuses_even_a_subscription_that_deployed_it_before() -> None:
    # gpt-5.4-mini retires 2027-09-21: refused from 2027-08-22 (30 days before).
    assert action("gpt-5.4-mini", "2026-03-17", "2027-03-17", deployed_before=True) != "refuse"
    assert action("gpt-5.4-mini", "2026-03-17", "2027-08-21", deployed_before=True) != "refuse"
    assert action("gpt-5.4-mini", "2026-03-17", "2027-08-22", deployed_before=True) == "refuse"
    assert action("gpt-5.4-mini", "2026-03-17", "2027-09-21", deployed_before=True) == "refuse"


def test_a_closed_lifecycle_refuses_new_customers_only() -> None:
    assert action("gpt-4o-mini", "2024-07-18", "2026-12-08") == "refuse"
    assert action("gpt-4o-mini", "2024-07-18", "2026-12-08", deployed_before=True) == "ok"


def test_a_model_that_rejects_function_tools_on_chat_completions_is_refused() -> None:
    verdict = ml.decide(TABLE, "gpt-5.6-luna", "2026-07-09", D("2026-12-08"))
    assert verdict.action == "refuse"
    assert "function tools" in verdict.reasons[0]


def test_unknown_model_or_unestablished_tool_support_warns_and_goes_on() -> None:
    unknown = ml.decide(TABLE, "gpt-7", "2027-01-01", D("2026-12-08"))
    assert unknown.action == "warn"
    assert "not in infra/model-lifecycle.json" in unknown.reasons[0]
    assert action("gpt-5.4-mini", "2099-01-01", "2026-12-08") == "warn"  # a version the table does not list
    assert action("gpt-5.5", "2026-04-24", "2026-12-08") == "warn"  # tools not established


def test_a_stale_table_warns() -> None:
    stale_day = TABLE.read_on + dt.timedelta(days=ml.STALE_AFTER_DAYS + 1)
    verdict = ml.decide(TABLE, "gpt-5.4-mini", "2026-03-17", stale_day)
    assert verdict.action == "warn"
    assert "more than 90 days ago" in verdict.reasons[-1]
    assert action("gpt-5.4-mini", "2026-03-17", str(TABLE.read_on + dt.timedelta(days=ml.STALE_AFTER_DAYS))) == "ok"


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [("2025-12-11", 12, "2026-12-11"), ("2024-02-29", 12, "2025-02-28"), ("2026-01-31", 1, "2026-02-28")],
)
def test_add_months(day: str, months: int, expected: str) -> None:
    assert ml.add_months(D(day), months) == D(expected)


# ---- one source of truth -----------------------------------------------------------------------------------------
def test_the_table_default_is_what_the_infra_deploys() -> None:
    defaults = ml.parameter_defaults()
    assert (defaults["AZURE_OPENAI_MODEL"], defaults["AZURE_OPENAI_MODEL_VERSION"]) == TABLE.default
    main = BicepFile.load(ROOT / "infra" / "main.bicep", ROOT)
    text = main.text
    assert f"param chatModelName string = '{TABLE.default[0]}'" in text
    assert f"param chatModelVersion string = '{TABLE.default[1]}'" in text
    assert TABLE.find(*TABLE.default) is not None
    assert TABLE.find(*TABLE.default).chat_function_tools is True


def test_every_row_is_dated_and_cites_its_source() -> None:
    raw = json.loads((ROOT / "infra" / "model-lifecycle.json").read_text())
    assert raw["schedule_source"]["url"].startswith("https://learn.microsoft.com/")
    assert raw["rule"]["source"]["url"].startswith("https://learn.microsoft.com/")
    for entry in TABLE.entries:
        assert entry.retirement > entry.launch, entry


def test_the_preprovision_hook_runs_it_on_both_shells() -> None:
    azure_yaml = (ROOT / "azure.yaml").read_text()
    assert "preprovision:" in azure_yaml
    assert "./scripts/preprovision.sh" in azure_yaml
    assert "./scripts/preprovision.ps1" in azure_yaml
    assert "scripts/model_lifecycle.py" in (ROOT / "scripts" / "preprovision.sh").read_text()
    assert "scripts/model_lifecycle.py" in (ROOT / "scripts" / "preprovision.ps1").read_text()


# ---- the hook as azd runs it (stdlib only, own process) -----------------------------------------------------------
def run(env: dict[str, str], today: str) -> subprocess.CompletedProcess[str]:
    # -I: isolated mode, no site-packages, like the deployer's bare python3 before any venv exists.
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "--today", today], env={"AZURE_ENV_NAME": "dev", **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_hook_refuses_the_old_default_and_names_the_override() -> None:
    result = run({"AZURE_OPENAI_MODEL": "gpt-5.2", "AZURE_OPENAI_MODEL_VERSION": "2025-12-11"}, "2026-12-11")
    assert result.returncode == 1
    assert "refusing to deploy chat model gpt-5.2 2025-12-11" in result.stderr
    assert "azd env set AZURE_OPENAI_MODEL gpt-5.4-mini" in result.stderr
    assert "azd env set AZURE_OPENAI_MODEL_VERSION 2026-03-17" in result.stderr
    assert "azd env set REYNOLDS_MODEL_DEPLOYED_BEFORE true" in result.stderr
    accepted = run({"AZURE_OPENAI_MODEL": "gpt-5.2", "AZURE_OPENAI_MODEL_VERSION": "2025-12-11"}, "2026-12-10")
    assert accepted.returncode == 0, accepted.stderr


def test_hook_accepts_the_default_when_nothing_is_set() -> None:
    result = run({}, "2026-12-08")
    assert result.returncode == 0, result.stderr
    assert "gpt-5.4-mini 2026-03-17" in result.stdout
    assert "until 2027-03-16" in result.stdout


def test_hook_honours_a_subscription_that_deployed_the_version_before() -> None:
    env = {"AZURE_OPENAI_MODEL": "gpt-5.2", "AZURE_OPENAI_MODEL_VERSION": "2025-12-11"}
    assert run({**env, "REYNOLDS_MODEL_DEPLOYED_BEFORE": "true"}, "2026-12-11").returncode == 0


def test_with_no_listed_model_left_the_refusal_points_to_the_schedule() -> None:
    result = run({}, "2027-03-17")  # the default's own boundary; every tools-verified row is past its window by then
    assert result.returncode == 1
    assert "no listed model qualifies" in result.stderr
    assert TABLE.source_url in result.stderr


def test_reynolds_never_sends_reasoning_effort() -> None:
    # The table's chat_function_tools=true rows accept tools on Chat Completions only without reasoning_effort.
    for path in sorted((ROOT / "shared" / "ai").glob("*.py")):
        assert "reasoning_effort" not in path.read_text(), path
