"""Settings contract: the code (shared.settings), the Function App's Bicep app settings and
local.settings.json.example name the same settings."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.settings import local_only_setting_names, setting_names

ROOT = Path(__file__).resolve().parents[1]
API_BICEP = ROOT / "infra" / "app" / "api.bicep"
EXAMPLE = ROOT / "local.settings.json.example"

# Settings the Functions host (not the code) reads; allowed in Bicep and the example without a model field.
HOST_SETTING = re.compile(
    r"^(AzureWebJobs\w*|FUNCTIONS_\w+|APPLICATIONINSIGHTS_\w+|ServiceBusConnection__(credential|clientId))$"
)


@dataclass(frozen=True)
class ContractProblem:
    setting: str
    problem: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.problem}"


def compare_settings(
    code: Iterable[str], local_only: Iterable[str], bicep: Iterable[str], example: Iterable[str]
) -> list[ContractProblem]:
    """Every disagreement between the three sources, each naming the setting (pure; no files)."""
    code_set, local_set, bicep_set, example_set = set(code), set(local_only), set(bicep), set(example)
    problems: list[ContractProblem] = []
    for name in sorted(code_set - local_set - bicep_set):
        problems.append(ContractProblem(name, "read by the code but missing from infra/app/api.bicep app settings"))
    for name in sorted(code_set - example_set):
        problems.append(ContractProblem(name, "read by the code but missing from local.settings.json.example"))
    for name in sorted(local_set & bicep_set):
        problems.append(ContractProblem(name, "local-only setting must not be deployed by Bicep"))
    for name in sorted(bicep_set - code_set):
        if not HOST_SETTING.match(name):
            problems.append(ContractProblem(name, "set by Bicep but not read by the code (shared/settings.py)"))
    for name in sorted(example_set - code_set):
        if not HOST_SETTING.match(name):
            problems.append(ContractProblem(name, "in local.settings.json.example but not read by the code"))
    return problems


def bicep_app_setting_names(text: str) -> list[str]:
    """Keys of the `var appSettings = { ... }` object literal in the Function App module."""
    match = re.search(r"^var appSettings = \{\n(?P<body>.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert match, "var appSettings = { ... } not found in api.bicep"
    names = []
    for line in match.group("body").splitlines():
        key = re.match(r"^\s{2}(?:'([^']+)'|([A-Za-z_][\w]*))\s*:", line)
        if key:
            names.append(key.group(1) or key.group(2))
    return names


def example_setting_names(text: str) -> list[str]:
    """Keys of ``Values`` in local.settings.json.example."""
    return list(json.loads(text)["Values"])


def _sources() -> tuple[list[str], list[str], list[str], list[str]]:
    return (
        setting_names(),
        local_only_setting_names(),
        bicep_app_setting_names(API_BICEP.read_text()),
        example_setting_names(EXAMPLE.read_text()),
    )


def _consistent() -> tuple[list[str], list[str], list[str], list[str]]:
    """Inputs that agree by construction (so the mutation tests do not depend on the live files)."""
    code, local = setting_names(), local_only_setting_names()
    bicep = [name for name in code if name not in local] + ["AzureWebJobsStorage__credential"]
    example = [*code, "AzureWebJobsStorage", "FUNCTIONS_WORKER_RUNTIME"]
    return code, local, bicep, example


def test_consistent_inputs_have_no_problem() -> None:
    assert compare_settings(*_consistent()) == []


def test_settings_agree_between_code_bicep_and_example() -> None:
    problems = compare_settings(*_sources())
    assert not problems, "\n".join(str(p) for p in problems)


def test_bicep_parser_finds_the_app_settings() -> None:
    names = bicep_app_setting_names(API_BICEP.read_text())
    assert "COSMOS__accountEndpoint" in names
    assert "ServiceBusConnection__fullyQualifiedNamespace" in names
    assert "AzureWebJobsStorage__tableServiceUri" in names
    assert len(names) == len(set(names)), "duplicate app setting keys"


def test_app_settings_parse_with_pycep_too() -> None:
    from pycep import BicepParser

    parsed = BicepParser().parse(file_path=API_BICEP)
    assert "appSettings" in parsed["variables"]
    body = json.dumps(parsed["variables"]["appSettings"])
    for name in bicep_app_setting_names(API_BICEP.read_text()):
        assert f'"{name}"' in body, name


def test_removing_a_setting_from_bicep_fails_naming_it() -> None:
    code, local, bicep, example = _consistent()
    broken = [name for name in bicep if name != "TASK_HUB_NAME"]
    problems = compare_settings(code, local, broken, example)
    assert [p.setting for p in problems] == ["TASK_HUB_NAME"]
    assert "api.bicep" in str(problems[0])


def test_removing_a_setting_from_example_fails_naming_it() -> None:
    code, local, bicep, example = _consistent()
    broken = [name for name in example if name != "GRAPH_CLIENT_STATE"]
    problems = compare_settings(code, local, bicep, broken)
    assert [p.setting for p in problems] == ["GRAPH_CLIENT_STATE"]


def test_a_new_code_setting_fails_until_both_files_have_it() -> None:
    code, local, bicep, example = _consistent()
    problems = compare_settings([*code, "NEW_SETTING"], local, bicep, example)
    assert {p.setting for p in problems} == {"NEW_SETTING"}
    assert len(problems) == 2


def test_local_only_settings_are_not_deployed() -> None:
    code, local, bicep, example = _consistent()
    problems = compare_settings(code, local, [*bicep, "COSMOS_EMULATOR_KEY"], example)
    assert [p.setting for p in problems] == ["COSMOS_EMULATOR_KEY"]


def test_bicep_literals_match_code_defaults() -> None:
    # "The rest get their defaults": a literal in Bicep must equal the code default, or the two drift apart.
    from shared.settings import Settings

    text = API_BICEP.read_text()
    literals = dict(re.findall(r"^\s{2}(\w+): '([^'$@]*)'$", text, re.MULTILINE))
    drift = []
    for field in Settings.model_fields.values():
        name, default = field.alias, field.default
        if name not in literals or default is None:
            continue
        same = (
            float(literals[name]) == float(default) if isinstance(default, int | float) else literals[name] == default
        )
        if not same:
            drift.append(f"{name}: bicep {literals[name]!r} != code default {default!r}")
    assert not drift, drift
    assert "GITHUB_TIMEOUT_SECONDS" in literals


#: ``NAME: p``, ``NAME: string(p)`` or ``NAME: empty(p) ? <fallback> : p`` in api.bicep's app settings.
PARAM_VALUE = re.compile(r"^\s{2}(\w+): (?:string\((\w+)\)|empty\((\w+)\) \?.*|(\w+))$", re.MULTILINE)


def param_defaults_drift(api_text: str, main: Any, api: Any) -> list[str]:
    """Settings whose Bicep value is an optional parameter (a tunable): its default in api.bicep and in main.bicep
    must equal the code default, so an azd parameter left unset deploys exactly what the code assumes."""
    from shared.settings import Settings

    refs = {m[0]: m[1] or m[2] or m[3] for m in PARAM_VALUE.findall(api_text)}
    drift = []
    for field in Settings.model_fields.values():
        param = refs.get(str(field.alias))
        if param is None or (api.parameters.get(param) or {}).get("default") is None:
            continue  # a required module parameter is wired from a resource, not a tunable
        code = "" if field.default is None else str(field.default)
        for where, parameters in (("api.bicep", api.parameters), ("main.bicep", main.parameters)):
            default = (parameters.get(param) or {}).get("default")
            if str("" if default is None else default) != code:
                drift.append(f"{field.alias}: {where} param {param} default {default!r} != code default {code!r}")
    return drift


def test_parameterised_settings_default_to_the_code_default() -> None:
    from tools.bicepcheck.source import BicepFile

    api_text = API_BICEP.read_text()
    main = BicepFile.load(ROOT / "infra" / "main.bicep", ROOT)
    api = BicepFile.load(API_BICEP, ROOT)
    assert param_defaults_drift(api_text, main, api) == []
    assert {"LOOP_MAX_AUTOMATED_DEPTH", "LOOP_LINKED_SCOPES"} <= {m[0] for m in PARAM_VALUE.findall(api_text)}
    # Mutation: a main.bicep default that differs from the code is named.
    params = {**main.parameters, "loopMaxAutomatedDepth": {**main.parameters["loopMaxAutomatedDepth"], "default": 8}}
    drifted = dataclasses.replace(main, parsed={**main.parsed, "parameters": params})
    assert param_defaults_drift(api_text, drifted, api) == [
        "LOOP_MAX_AUTOMATED_DEPTH: main.bicep param loopMaxAutomatedDepth default 8 != code default '4'"]


def test_secret_settings_come_from_key_vault() -> None:
    text = API_BICEP.read_text()
    for name in (
        "GITHUB_WEBHOOK_SECRET",
        "GITHUB_APP_PRIVATE_KEY",
        "TEAMS_OUTGOING_WEBHOOK_TOKEN",
        "GRAPH_CLIENT_STATE",
        "REYNOLDS_MARKER_KEY",
    ):
        # Either reference form App Service documents: SecretUri=... or VaultName=...;SecretName=...
        assert re.search(rf"^\s+{name}: '@Microsoft\.KeyVault\((SecretUri|VaultName)=", text, re.MULTILINE), name


def test_example_is_safe_for_local_runs() -> None:
    data = json.loads(EXAMPLE.read_text())
    assert data["IsEncrypted"] is False
    values = data["Values"]
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["LINEAGE_STORE"] == "cosmos"
    assert values["COSMOS__accountEndpoint"] == "https://localhost:8081/"
    assert values["GITHUB_WEBHOOK_SECRET"].startswith("local-dev-")
