"""``make teams-app``: the package validates against the manifest schema pinned in package.json
(``@microsoft/app-manifest``), declares the bot scopes and the RSC permission, and carries no GUID in the repo."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest

from tools import teams_app

ROOT = Path(__file__).resolve().parents[1]
TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"


def check(package: bytes, tmp_path: Path) -> list[str]:
    """Schema problems of ``package``: in-process when jsonschema is importable, else with the .venv-tools
    interpreter (its lock has jsonschema; the app's locks do not)."""
    teams_app.schema_path()  # fails naming `npm ci` when the pinned schema is not installed
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        if not TOOLS_PYTHON.exists():
            pytest.fail("jsonschema is needed to validate the manifest: `make test` installs .venv-tools")
        path = tmp_path / "app.zip"
        path.write_bytes(package)
        result = subprocess.run([str(TOOLS_PYTHON), "-m", "tools.teams_app", "--check", str(path)], cwd=ROOT,
                                capture_output=True, text=True, timeout=120, check=False)
        return [line for line in result.stderr.splitlines() if "is valid" not in line] or (
            [] if result.returncode == 0 else [f"exit {result.returncode}"])
    return teams_app.problems(package)


def rezip(package: bytes, change: dict[str, object]) -> bytes:
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    document = json.loads(files["manifest.json"])
    document.update(change)
    files["manifest.json"] = json.dumps(document).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_package_validates_against_the_pinned_schema(tmp_path: Path) -> None:
    bot_id = str(uuid.uuid4())  # made here: no GUID is written into the repository
    package = teams_app.package(bot_id, app_host="func-abc.azurewebsites.net")
    assert check(package, tmp_path) == []
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        document = json.loads(archive.read("manifest.json"))
    assert document["bots"][0]["botId"] == bot_id == document["id"] == document["webApplicationInfo"]["id"]
    assert document["bots"][0]["scopes"] == ["team", "groupChat", "personal"]
    assert {"name": "ChannelMessage.Read.Group", "type": "Application"} in \
        document["authorization"]["permissions"]["resourceSpecific"]


def test_the_schema_check_refuses_a_broken_manifest(tmp_path: Path) -> None:
    package = teams_app.package(str(uuid.uuid4()))
    broken = rezip(package, {"bots": [{"botId": "not-a-guid", "scopes": ["everywhere"]}], "accentColor": None})
    found = check(broken, tmp_path)
    assert found, "a manifest with a bad bot id, scope and colour must not validate"


def test_icons_have_the_sizes_teams_requires() -> None:
    for data, size in ((teams_app.color_icon(), 192), (teams_app.outline_icon(), 32)):
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (size, size)


def test_a_bot_id_that_is_not_a_guid_is_refused() -> None:
    with pytest.raises(teams_app.PackageError, match="GUID"):
        teams_app.manifest("reynolds")


def test_without_a_bot_id_the_command_exits_2(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("BOT_ID", raising=False)
    monkeypatch.setattr(teams_app, "azd_values", lambda: {})
    assert teams_app.main(["--out", "/dev/null"]) == 2
    assert "BOT_ID" in capsys.readouterr().err


def test_no_guid_is_written_into_the_repository() -> None:
    guid = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
    for relative in ("tools/teams_app.py", "infra/app/bot.bicep", "Makefile"):
        assert not guid.search((ROOT / relative).read_text()), relative
    assert sys.modules["tools.teams_app"] is teams_app
