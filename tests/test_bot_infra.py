"""The Azure Bot in infra/ (issue 22): checked against the upstream Microsoft.BotService type data like the rest of
infra/, identity only (UserAssignedMSI, no secret), the messaging endpoint the bot door serves, and the bot id the
app settings and azd outputs carry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_bicep_upstream import Mutator
from tools.bicepcheck import Fixtures, FixturesMissing, fixtures_dir

ROOT = Path(__file__).resolve().parents[1]
BOT = "infra/app/bot.bicep"


@pytest.fixture
def broken(tmp_path: Path) -> Mutator:
    try:
        return Mutator(tmp_path, Fixtures(fixtures_dir(ROOT)))
    except FixturesMissing as exc:
        pytest.fail(str(exc))


def test_the_bot_passes_every_upstream_check(broken: Mutator) -> None:
    assert [f for f in broken() if f.file.endswith("bot.bicep")] == []


def test_a_misspelled_bot_property_is_found(broken: Mutator) -> None:
    findings = broken((BOT, "    msaAppMSIResourceId:", "    msaAppMsiResource:"))
    assert [f for f in findings if f.file.endswith("bot.bicep")], findings


def test_user_assigned_msi_is_a_named_app_type_upstream() -> None:
    """The upstream union is open (the named literals plus any string: Bicep only warns), so the check is that
    our value is one of the literals the type data names, not a free string that happens to compile."""
    fixtures = Fixtures(fixtures_dir(ROOT))
    body = fixtures.resource_body("Microsoft.BotService/botServices", "2022-09-15")
    assert body is not None
    library = body.library

    def node(reference: dict[str, str]) -> dict[str, object]:
        return dict(library.nodes[int(reference["$ref"].rsplit("/", 1)[1])])

    properties = node(body.node["properties"]["properties"]["type"])["properties"]
    union = node(properties["msaAppType"]["type"])  # type: ignore[index]
    literals = {node(e).get("value") for e in union["elements"]}  # type: ignore[attr-defined]
    assert "UserAssignedMSI" in literals


def test_a_channel_name_that_is_no_variant_is_found(broken: Mutator) -> None:
    findings = broken((BOT, "channelName: 'MsTeamsChannel'", "channelName: 'TeamsChannel'"))
    assert [f for f in findings if f.file.endswith("bot.bicep")], findings


def test_the_bot_is_identity_only_and_serves_the_bot_door() -> None:
    text = (ROOT / BOT).read_text()
    assert "msaAppType: 'UserAssignedMSI'" in text
    assert "endpoint: 'https://${appHostName}/api/messages'" in text
    assert "disableLocalAuth: true" in text
    assert not re.search(r"(?i)password|secret|listKeys|appPassword", re.sub(r"//.*", "", text))
    assert re.search(r"channelName: 'MsTeamsChannel'", text)


def test_the_bot_id_is_the_app_identity_in_settings_and_outputs() -> None:
    main = (ROOT / "infra" / "main.bicep").read_text()
    api = (ROOT / "infra" / "app" / "api.bicep").read_text()
    assert re.search(r"identityClientId: apiIdentity\.outputs\.clientId", main)
    assert "output BOT_ID string = bot.outputs.BOT_ID" in main
    # The app validates tokens for the same id the bot is registered with.
    assert "TEAMS_BOT_APP_ID: identityClientId" in api
    assert "output BOT_ID string = bot.properties.msaAppId" in (ROOT / BOT).read_text()
