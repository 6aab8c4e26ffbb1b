"""azd's parameter substitution (tools.bicepcheck.azd, modelled on azd's BicepProvider.loadParameters and
drone/envsubst v1.0.3) applied to infra/main.parameters.json: a multi-line PEM in the environment or in the vault
no longer reaches the parameters JSON, the Graph settings are mapped, defaults agree with main.bicep."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools.bicepcheck.azd import (
    ParametersError,
    SubstitutionError,
    Unsupported,
    envsubst,
    go_json_marshal,
    load_parameters,
)
from tools.bicepcheck.source import BicepFile

ROOT = Path(__file__).resolve().parents[1]
PARAMETERS = ROOT / "infra" / "main.parameters.json"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAvR3+Zk0tOQ2pYF0yq\"quoted\"\\backslash\n"
    "dGVzdCBrZXkgbWF0ZXJpYWwgb25seQ==\n"
    "-----END RSA PRIVATE KEY-----\n"
)
ENV = {"AZURE_ENV_NAME": "reynolds-dev", "AZURE_LOCATION": "swedencentral", "AZURE_KEY_VAULT_NAME": "kv-abc"}


# ---- the envsubst port, pinned with drone/envsubst v1.0.3's own eval_test.go vectors --------------------------------
@pytest.mark.parametrize(
    ("params", "text", "expected"),
    [
        ({}, "abcdEFGH28ij", "abcdEFGH28ij"),
        ({"var": "abc"}, "${var=xyz}", "abc"),
        ({}, "${var=xyz}", "xyz"),
        ({"default_var": "foo"}, "something ${var=${default_var}}", "something foo"),
        ({"default_var": "foo1"}, "foo: ${var=${default_var}-suffix}", "foo: foo1-suffix"),
        ({"default_var": "foo1"}, "foo: ${var=prefix${default_var}-suffix}", "foo: prefixfoo1-suffix"),
        ({}, "${var:=xyz}", "xyz"),
        ({"var01": "abcdEFGH28ij"}, "$${var01}", "${var01}"),
        (
            {"var01": "abcdEFGH28ij"},
            "some text ${var01}$${var$${var01}$var01${var01}",
            "some text abcdEFGH28ij${var${var01}$var01abcdEFGH28ij",
        ),
        ({"default_var": "foo"}, "something $${var=${default_var}}", "something ${var=foo}"),
    ],
)
def test_envsubst_matches_upstream_vectors(params: dict[str, str], text: str, expected: str) -> None:
    assert envsubst(text, lambda name: params.get(name, "")) == expected


def test_envsubst_leaves_command_substitution_alone_and_fails_on_a_missing_brace() -> None:
    assert envsubst("$(secretOrRandomPassword ${KV} s)", {"KV": "kv1"}.__getitem__) == "$(secretOrRandomPassword kv1 s)"
    with pytest.raises(SubstitutionError):
        envsubst("${AZURE_ENV_NAME", lambda _: "x")
    with pytest.raises(Unsupported):
        envsubst("${var^^}", lambda _: "x")


def test_go_json_marshal_escapes_html_like_go() -> None:
    marshalled = go_json_marshal({"value": "a<b>&c", "reference": None})
    assert marshalled == '{"value":"a\\u003cb\\u003e\\u0026c","reference":null}'


# ---- the original defect, reproduced ------------------------------------------------------------------------------
def test_the_original_mapping_breaks_on_reprovision_with_a_pem_in_the_vault() -> None:
    # Before issue 12 the file mapped the key through secretOrRandomPassword, which pastes the vault's PEM
    # unescaped into the parameter JSON on every provision after the key was stored.
    data = json.loads(PARAMETERS.read_text())
    data["parameters"]["githubAppPrivateKey"] = {
        "value": "$(secretOrRandomPassword ${AZURE_KEY_VAULT_NAME} github-app-private-key)"
    }
    original = json.dumps(data)
    first = load_parameters(original, ENV)  # first provision: the secret does not exist, a password is generated
    assert first.parameters["githubAppPrivateKey"]
    with pytest.raises(ParametersError, match="githubAppPrivateKey"):
        load_parameters(original, ENV, secrets={("kv-abc", "github-app-private-key"): PEM})


# ---- the parameters file today ------------------------------------------------------------------------------------
def test_a_multiline_pem_in_the_environment_and_the_vault_leaves_valid_parameters() -> None:
    env = {**ENV, "GITHUB_APP_PRIVATE_KEY": PEM, "GITHUB_APP_PRIVATE_KEY_FILE": "/tmp/key.pem"}
    secrets = {("kv-abc", name): PEM for name in ("github-app-private-key", "github-webhook-secret")}
    resolved = load_parameters(PARAMETERS.read_text(), env, secrets=secrets)
    assert resolved.parameters["environmentName"] == "reynolds-dev"
    assert not [name for name, value in resolved.parameters.items() if "PRIVATE KEY" in json.dumps(value)]


def test_no_parameter_carries_a_secret() -> None:
    text = PARAMETERS.read_text()
    assert "secretOrRandomPassword" not in text
    mapped = {v for values in load_parameters(text, ENV).env_mapping.values() for v in values}
    assert not {v for v in mapped if re.search(r"SECRET|PRIVATE_KEY|TOKEN|CLIENT_STATE|MARKER_KEY", v)}, mapped


def test_mapping_a_pem_variable_would_break_provisioning() -> None:
    # Mutation: the check above is what keeps this out; azd itself would stop with an unmarshalling error.
    data = json.loads(PARAMETERS.read_text())
    data["parameters"]["githubAppId"] = {"value": "${GITHUB_APP_PRIVATE_KEY}"}
    with pytest.raises(ParametersError, match="githubAppId"):
        load_parameters(json.dumps(data), {**ENV, "GITHUB_APP_PRIVATE_KEY": PEM})


def test_graph_settings_reach_the_template_when_set() -> None:
    env = {
        **ENV,
        "GRAPH_NOTIFICATION_URL": "https://func-api-x.azurewebsites.net/api/graph/notifications",
        "GRAPH_SUBSCRIPTION_RESOURCES": "teams/t1/channels/c1/messages,chats/19:x@thread.v2/messages",
    }
    resolved = load_parameters(PARAMETERS.read_text(), env).parameters
    assert resolved["graphNotificationUrl"] == env["GRAPH_NOTIFICATION_URL"]
    assert resolved["graphSubscriptionResources"] == env["GRAPH_SUBSCRIPTION_RESOURCES"]


def test_unset_graph_settings_fall_back_to_the_template_default() -> None:
    resolved = load_parameters(PARAMETERS.read_text(), ENV).parameters
    assert "graphNotificationUrl" not in resolved
    assert "graphSubscriptionResources" not in resolved


def test_model_override() -> None:
    default = load_parameters(PARAMETERS.read_text(), ENV).parameters
    assert (default["chatModelName"], default["chatModelVersion"]) == ("gpt-5.4-mini", "2026-03-17")
    env = {**ENV, "AZURE_OPENAI_MODEL": "gpt-5.5", "AZURE_OPENAI_MODEL_VERSION": "2026-04-24"}
    overridden = load_parameters(PARAMETERS.read_text(), env).parameters
    assert (overridden["chatModelName"], overridden["chatModelVersion"]) == ("gpt-5.5", "2026-04-24")


def test_defaults_in_the_parameters_file_match_main_bicep() -> None:
    # `${VAR=default}` yields the default when VAR is unset or empty; an empty result of an unset VAR drops the
    # parameter, so main.bicep's default applies. Either way the two defaults must agree.
    main = BicepFile.load(ROOT / "infra" / "main.bicep", ROOT)
    data = json.loads(PARAMETERS.read_text())["parameters"]
    checked = 0
    for name, body in data.items():
        match = re.fullmatch(r"\$\{(\w+)=([^}]*)\}", str(body.get("value")))
        if not match:
            continue
        default = main.parameters[name].get("default")
        assert str(default if default is not None else "") == match.group(2), name
        checked += 1
    assert checked >= 10


def test_every_mapped_parameter_takes_the_modelled_path() -> None:
    # loadParameters substitutes object/array parameters differently ("Path A"); the model covers the rest.
    main = BicepFile.load(ROOT / "infra" / "main.bicep", ROOT)
    mapped = json.loads(PARAMETERS.read_text())["parameters"]
    kinds = {name: main.parameters[name]["type"] for name in mapped}
    assert set(kinds.values()) <= {"string", "int", "bool"}, kinds


def test_every_loop_setting_is_an_azd_parameter_that_reaches_the_template() -> None:
    # `azd env set LOOP_…` survives the next provision (a portal edit of the app setting would not).
    from shared.settings import setting_names

    loop_settings = [name for name in setting_names() if name.startswith("LOOP_")]
    data = json.loads(PARAMETERS.read_text())["parameters"]
    mapped = {m.group(1): param for param, body in data.items()
              if (m := re.fullmatch(r"\$\{(\w+)=[^}]*\}", str(body.get("value"))))}
    assert [name for name in loop_settings if name not in mapped] == []
    env = {**ENV, "LOOP_LINKED_SCOPES": "github:contoso=teams:00000000-0000-0000-0000-000000000001",
           "LOOP_MAX_AUTOMATED_DEPTH": "6"}
    resolved = load_parameters(PARAMETERS.read_text(), env).parameters
    assert resolved[mapped["LOOP_LINKED_SCOPES"]] == env["LOOP_LINKED_SCOPES"]
    assert str(resolved[mapped["LOOP_MAX_AUTOMATED_DEPTH"]]) == "6"
    main = BicepFile.load(ROOT / "infra" / "main.bicep", ROOT)
    passed = json.dumps(main.modules["api"].body)
    assert [p for p in mapped.values() if p.startswith("loop") and p not in passed] == []
