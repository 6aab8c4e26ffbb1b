"""Upstream checks of infra/ (tools.bicepcheck) against ../shared/fixtures/azure-bicep: the repository passes
them, and each check fails on a deliberately broken copy of infra/, naming file and line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tools.bicepcheck import Checker, Finding, Fixtures, FixturesMissing, fixtures_dir
from tools.bicepcheck.checks import FLEX_REJECTED_SITE_PROPERTIES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fixtures() -> Fixtures:
    try:
        return Fixtures(fixtures_dir(ROOT))
    except FixturesMissing as exc:
        pytest.fail(str(exc))


class Mutator:
    """A copy of infra/ under ``root``: calling it applies ``(file, old, new)`` text edits and runs every check."""

    def __init__(self, root: Path, fixtures: Fixtures) -> None:
        self.root = root
        self.fixtures = fixtures
        shutil.copytree(ROOT / "infra", root / "infra")

    def __call__(self, *edits: tuple[str, str, str]) -> list[Finding]:
        for relative, old, new in edits:
            path = self.root / relative
            text = path.read_text()
            assert old in text, f"mutation anchor not found in {relative}: {old!r}"
            path.write_text(text.replace(old, new, 1))
        return Checker(self.root, self.fixtures).run()


@pytest.fixture
def broken(tmp_path: Path, fixtures: Fixtures) -> Mutator:
    return Mutator(tmp_path, fixtures)


def line_of(root: Path, relative: str, needle: str) -> int:
    for number, line in enumerate((root / relative).read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {relative}")


def only(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


# ---- the repository -----------------------------------------------------------------------------------------------
def test_infra_passes_every_upstream_check(fixtures: Fixtures) -> None:
    findings = Checker(ROOT, fixtures).run()
    assert not findings, "\n".join(map(str, findings))


def test_missing_fixtures_directory_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REYNOLDS_AZURE_BICEP_FIXTURES", raising=False)
    with pytest.raises(
        FixturesMissing, match=re.escape(str(tmp_path.resolve() / "shared" / "fixtures" / "azure-bicep"))
    ):
        fixtures_dir(tmp_path / "repo")


def test_the_original_defects_are_found_by_the_checks(tmp_path: Path, fixtures: Fixtures) -> None:
    # The infra/ of issue 12 (before the fix), rebuilt from its three defects: each is reported at its line.
    shutil.copytree(ROOT / "infra", tmp_path / "infra")
    sb = tmp_path / "infra/app/servicebus.bicep"
    sb.write_text(
        sb.read_text()
        .replace(
            "output name string = namespace.outputs.name",
            "resource sb 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {\n"
            "  name: namespace.outputs.name\n}\n\noutput name string = namespace.outputs.name",
        )
        .replace("namespace.outputs.serviceBusEndpoint", "sb.properties.serviceBusEndpoint")
    )
    findings = Checker(tmp_path, fixtures).run()
    assert [(f.file, f.line, f.rule) for f in findings] == [
        ("infra/app/servicebus.bicep", line_of(tmp_path, "infra/app/servicebus.bicep", "sb.properties"), "BCP307")
    ]
    assert "only id, name, type and apiVersion" in findings[0].message


# ---- module calls -------------------------------------------------------------------------------------------------
def test_unknown_module_parameter(broken: Mutator) -> None:
    findings = broken(("infra/app/servicebus.bicep", "    zoneRedundant: false", "    zoneRedundancy: false"))
    [finding] = only(findings, "module-param-unknown")
    assert finding.file == "infra/app/servicebus.bicep"
    assert finding.line == line_of(broken.root, finding.file, "zoneRedundancy: false")
    assert "zoneRedundancy" in finding.message
    assert "service-bus/namespace:0.14.1" in finding.message


def test_required_module_parameter_missing(broken: Mutator) -> None:
    findings = broken(
        ("infra/app/keyvault.bicep", "    name: name\n    location: location\n", "    location: location\n")
    )
    [finding] = only(findings, "module-param-required")
    assert (finding.file, finding.line) == (
        "infra/app/keyvault.bicep",
        line_of(broken.root, finding.file, "  params: {"),
    )
    assert "'name'" in finding.message


def test_nested_key_unknown_in_module_definition(broken: Mutator) -> None:
    findings = broken(
        ("infra/app/servicebus.bicep", "      name: 'Standard'\n", "      name: 'Standard'\n      size: 'S1'\n")
    )
    [finding] = only(findings, "module-param-value")
    assert finding.line == line_of(broken.root, finding.file, "size: 'S1'")
    assert "no key 'size'" in finding.message


def test_nested_allowed_value(broken: Mutator) -> None:
    findings = broken(("infra/app/servicebus.bicep", "      name: 'Standard'", "      name: 'Gold'"))
    [finding] = only(findings, "module-param-value")
    assert finding.line == line_of(broken.root, finding.file, "name: 'Gold'")
    assert "'Gold'" in finding.message
    assert "Standard" in finding.message


def test_top_level_allowed_value_and_type(broken: Mutator) -> None:
    findings = broken(
        ("infra/app/servicebus.bicep", "    minimumTlsVersion: '1.2'", "    minimumTlsVersion: '1.3'"),
        ("infra/app/servicebus.bicep", "    zoneRedundant: false", "    zoneRedundant: 'no'"),
    )
    messages = {f.line: f.message for f in only(findings, "module-param-value")}
    assert (
        "'1.3' is not one of the allowed values"
        in messages[line_of(broken.root, "infra/app/servicebus.bicep", "'1.3'")]
    )
    assert "must be bool" in messages[line_of(broken.root, "infra/app/servicebus.bicep", "zoneRedundant: 'no'")]


def test_nested_required_key_missing_in_array_item(broken: Mutator) -> None:
    # queueType requires `name`; the queue object is built with union(queueDefaults, {...}).
    findings = broken(
        ("infra/app/servicebus.bicep", "        name: eventsQueueName\n", "        forwardTo: outQueueName\n")
    )
    assert any("missing required key 'name'" in f.message for f in only(findings, "module-param-value"))


def test_module_output_that_does_not_exist(broken: Mutator) -> None:
    findings = broken(("infra/main.bicep", "apiIdentity.outputs.principalId", "apiIdentity.outputs.objectId"))
    [finding] = only(findings, "module-output-unknown")
    assert (finding.file, finding.line) == (
        "infra/main.bicep",
        line_of(broken.root, "infra/main.bicep", "outputs.objectId"),
    )
    assert "principalId" in finding.message  # the message lists the outputs that do exist


def test_pin_without_fixture_fails_naming_it(broken: Mutator) -> None:
    findings = broken(("infra/app/keyvault.bicep", "key-vault/vault:0.13.3", "key-vault/vault:0.13.4"))
    [finding] = only(findings, "avm-fixture-missing")
    assert finding.line == line_of(broken.root, finding.file, "key-vault/vault:0.13.4")
    assert "avm/key-vault/vault/0.13.4/main.json" in finding.message


def test_local_module_parameters(broken: Mutator) -> None:
    findings = broken(
        ("infra/main.bicep", "    keyVaultName: keyVault.outputs.name", "    vaultName: keyVault.outputs.name")
    )
    assert {f.rule for f in findings} == {"module-param-unknown", "module-param-required"}
    unknown = only(findings, "module-param-unknown")[0]
    assert unknown.line == line_of(broken.root, "infra/main.bicep", "vaultName: keyVault")
    assert "module 'rbac' (infra/app/rbac.bicep)" in unknown.message


def test_local_module_allowed_value(broken: Mutator) -> None:
    findings = broken(("infra/main.bicep", "    pythonVersion: pythonVersion\n", "    pythonVersion: '3.9'\n"))
    [finding] = only(findings, "module-param-value")
    assert finding.line == line_of(broken.root, "infra/main.bicep", "pythonVersion: '3.9'")


# ---- raw resources ------------------------------------------------------------------------------------------------
def test_resource_type_that_does_not_exist(broken: Mutator) -> None:
    findings = broken(
        (
            "infra/app/workbook.bicep",
            "'Microsoft.Insights/workbooks@2023-06-01'",
            "'Microsoft.Insights/workbook@2023-06-01'",
        )
    )
    [finding] = only(findings, "resource-type-unknown")
    assert finding.line == line_of(broken.root, finding.file, "Microsoft.Insights/workbook@")


def test_api_version_without_type_definitions(broken: Mutator) -> None:
    findings = broken(
        (
            "infra/app/workbook.bicep",
            "'Microsoft.Insights/workbooks@2023-06-01'",
            "'Microsoft.Insights/workbooks@2099-01-01'",
        )
    )
    [finding] = only(findings, "types-fixture-missing")
    assert "microsoft.insights@2099-01-01" in finding.message.lower()


def test_property_name_that_does_not_exist(broken: Mutator) -> None:
    findings = broken(("infra/app/alerts.bicep", "    autoMitigate: true", "    autoMitigates: true"))
    [finding] = only(findings, "resource-property-unknown")
    assert finding.line == line_of(broken.root, finding.file, "autoMitigates")
    assert "properties.autoMitigates" in finding.message


def test_nested_property_in_discriminated_type(broken: Mutator) -> None:
    # metricAlerts criteria are a discriminated object ('odata.type'): keys are checked against the chosen variant.
    findings = broken(
        (
            "infra/app/alerts.bicep",
            "      allOf: [\n        {\n          criterionType",
            "      allOff: [\n        {\n          criterionType",
        )
    )
    [finding] = only(findings, "resource-property-unknown")
    assert finding.line == line_of(broken.root, finding.file, "allOff:")
    assert "allOf" in finding.message  # the chosen variant's keys


def test_nested_property_in_array_item(broken: Mutator) -> None:
    # scheduledQueryRules criteria.allOf[] items are objects without additional properties.
    findings = broken(("infra/app/alerts.bicep", "          metricMeasureColumn:", "          metricMeasureColumns:"))
    [finding] = only(findings, "resource-property-unknown")
    assert finding.line == line_of(broken.root, finding.file, "metricMeasureColumns:")


def test_discriminator_value_must_name_a_variant(broken: Mutator) -> None:
    findings = broken(("infra/app/alerts.bicep", "Monitor.SingleResourceMultipleMetricCriteria'", "Monitor.Single'"))
    [finding] = only(findings, "resource-property-value")
    assert finding.line == line_of(broken.root, finding.file, "Monitor.Single'")
    assert "SingleResourceMultipleMetricCriteria" in finding.message  # the variants that exist


def test_read_only_property_set(broken: Mutator) -> None:
    findings = broken(
        (
            "infra/app/rbac.bicep",
            "    principalType: p.type\n  }\n}]\n\nresource storageQueue",
            "    principalType: p.type\n    createdOn: '2026-01-01'\n  }\n}]\n\nresource storageQueue",
        )
    )
    [finding] = only(findings, "resource-property-read-only")
    assert finding.line == line_of(broken.root, finding.file, "createdOn:")


def test_existing_resource_may_not_set_properties(broken: Mutator) -> None:
    findings = broken(("infra/app/rbac.bicep", "  name: keyVaultName\n}", "  name: keyVaultName\n  location: 'x'\n}"))
    [finding] = only(findings, "resource-property-read-only")
    assert finding.line == line_of(broken.root, finding.file, "location: 'x'")


# ---- compiler rules for existing resources named from module outputs -----------------------------------------------
def test_bcp307_reading_a_property_of_an_existing_resource_named_from_a_module_output(broken: Mutator) -> None:
    findings = broken(
        (
            "infra/app/api.bicep",
            "output SERVICE_API_NAME string = api.outputs.name",
            "resource site 'Microsoft.Web/sites@2024-04-01' existing = {\n  name: api.outputs.name\n}\n"
            "output HOST string = site.properties.defaultHostName\n"
            "output SITE_ID string = site.id\n"
            "output SERVICE_API_NAME string = api.outputs.name",
        )
    )
    [finding] = only(findings, "BCP307")  # site.id stays readable
    assert (finding.file, finding.line) == (
        "infra/app/api.bicep",
        line_of(broken.root, "infra/app/api.bicep", "site.properties"),
    )


def test_bcp307_through_a_variable(broken: Mutator) -> None:
    findings = broken(
        (
            "infra/app/servicebus.bicep",
            "output name string = namespace.outputs.name",
            "var nsName = namespace.outputs.name\nresource sb 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' "
            "existing = {\n  name: nsName\n}\noutput ep string = sb.properties.serviceBusEndpoint\n"
            "output name string = namespace.outputs.name",
        )
    )
    [finding] = only(findings, "BCP307")
    assert "variable 'nsName'" in finding.message


def test_existing_resource_named_from_a_parameter_may_be_read(broken: Mutator) -> None:
    # api.bicep reads stg.properties.primaryEndpoints: stg is named from a parameter, which is allowed.
    assert "stg.properties.primaryEndpoints" in (ROOT / "infra/app/api.bicep").read_text()
    assert not only(broken(), "BCP307")


def test_bcp120_existing_resource_from_module_output_as_parent(broken: Mutator) -> None:
    findings = broken(
        (
            "infra/app/keyvault.bicep",
            "output name string = vault.outputs.name",
            "resource kv 'Microsoft.KeyVault/vaults@2023-07-01' existing = {\n  name: vault.outputs.name\n}\n\n"
            "resource s 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {\n  parent: kv\n  name: 'x'\n"
            "  properties: {\n    contentType: 'text/plain'\n  }\n}\n\noutput name string = vault.outputs.name",
        )
    )
    [finding] = only(findings, "BCP120")
    assert (finding.file, finding.line) == (
        "infra/app/keyvault.bicep",
        line_of(broken.root, "infra/app/keyvault.bicep", "parent: kv"),
    )
    assert "'parent'" in finding.message
    assert "kv" in finding.message


def test_bcp120_existing_resource_as_scope(broken: Mutator) -> None:
    findings = broken(
        (
            "infra/app/keyvault.bicep",
            "output name string = vault.outputs.name",
            "resource kv 'Microsoft.KeyVault/vaults@2023-07-01' existing = {\n  name: vault.outputs.name\n}\n\n"
            "resource ra 'Microsoft.Authorization/roleAssignments@2022-04-01' = {\n  name: guid('x')\n  scope: kv\n"
            "  properties: {\n    roleDefinitionId: 'r'\n    principalId: 'p'\n  }\n}\n\n"
            "output name string = vault.outputs.name",
        )
    )
    [finding] = only(findings, "BCP120")
    assert finding.line == line_of(broken.root, "infra/app/keyvault.bicep", "scope: kv")


# ---- Flex Consumption ---------------------------------------------------------------------------------------------
def test_flex_rejects_ftps_state(broken: Mutator) -> None:
    findings = broken(
        (
            "infra/app/api.bicep",
            "      minTlsVersion: '1.2'\n",
            "      minTlsVersion: '1.2'\n      ftpsState: 'Disabled'\n",
        )
    )
    [finding] = only(findings, "flex-site-config")
    assert (finding.file, finding.line) == (
        "infra/app/api.bicep",
        line_of(broken.root, "infra/app/api.bicep", "ftpsState: 'Disabled'"),
    )


def test_flex_rejects_the_module_default_site_config(broken: Mutator) -> None:
    # Without siteConfig the web/site module sends its default {alwaysOn: true, ftpsState: 'FtpsOnly', ...}.
    findings = broken(
        ("infra/app/api.bicep", "    siteConfig: {\n      minTlsVersion: '1.2'\n      http20Enabled: true\n    }\n", "")
    )
    [finding] = only(findings, "flex-site-config")
    assert "alwaysOn" in finding.message
    assert "ftpsState" in finding.message


def test_flex_rejects_deprecated_app_settings(broken: Mutator) -> None:
    findings = broken(
        (
            "infra/app/api.bicep",
            "  TASK_HUB_NAME: taskHubName\n",
            "  TASK_HUB_NAME: taskHubName\n  FUNCTIONS_WORKER_RUNTIME: 'python'\n",
        )
    )
    [finding] = only(findings, "flex-app-setting")
    assert finding.line == line_of(broken.root, "infra/app/api.bicep", "FUNCTIONS_WORKER_RUNTIME")


def test_flex_list_covers_the_documented_properties() -> None:
    assert {"ftpsstate", "alwayson", "linuxfxversion", "use32bitworkerprocess"} <= FLEX_REJECTED_SITE_PROPERTIES


# ---- main.parameters.json -----------------------------------------------------------------------------------------
def test_parameter_without_default_must_be_mapped(broken: Mutator) -> None:
    findings = broken(
        ("infra/main.parameters.json", '    "environmentName": {\n      "value": "${AZURE_ENV_NAME}"\n    },\n', "")
    )
    [finding] = only(findings, "parameter-unmapped")
    assert (finding.file, finding.line) == (
        "infra/main.bicep",
        line_of(broken.root, "infra/main.bicep", "param environmentName"),
    )


def test_mapped_name_must_be_a_parameter(broken: Mutator) -> None:
    findings = broken(("infra/main.parameters.json", '"alertEmail"', '"alertMail"'))
    [finding] = only(findings, "parameter-unknown")
    assert (finding.file, finding.line) == (
        "infra/main.parameters.json",
        line_of(broken.root, "infra/main.parameters.json", "alertMail"),
    )


def test_command_line_exit_codes(tmp_path: Path, fixtures: Fixtures, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tools.bicepcheck.__main__ import main

    monkeypatch.setenv("REYNOLDS_AZURE_BICEP_FIXTURES", str(fixtures.root))
    assert main([str(ROOT)]) == 0
    mutated = Mutator(tmp_path / "copy", fixtures)
    mutated(("infra/app/alerts.bicep", "    autoMitigate: true", "    autoMitigates: true"))
    assert main([str(mutated.root)]) == 1
    assert "infra/app/alerts.bicep:" in capsys.readouterr().out
    monkeypatch.setenv("REYNOLDS_AZURE_BICEP_FIXTURES", str(tmp_path / "nowhere"))
    assert main([str(ROOT)]) == 2
    assert "not found" in capsys.readouterr().err
