"""``make teams-app``: the Teams app package (manifest.json + icons, zipped) for the deployed Reynolds bot.

``python -m tools.teams_app [--out FILE] [--check FILE]``. The bot id comes from ``BOT_ID=`` or from the azd
environment (``azd env get-values``: the ``BOT_ID`` output of infra/app/bot.bicep, which is the app identity's
client id); it is never written into the repository. The manifest (schema v``MANIFEST_VERSION`` of the Teams app
manifest, as published in npm ``@microsoft/app-manifest``, pinned in package.json) declares:

* one bot, scopes ``team``, ``groupChat`` and ``personal`` (Teams docs, "Bots in Microsoft Teams" / manifest
  ``bots[].scopes``);
* resource-specific consent ``ChannelMessage.Read.Group`` (Application): a team that installs the app lets the bot
  receive every channel message without @mention and without tenant-wide Graph permissions (Teams docs,
  "Resource-specific consent" and "Receive all channel messages with RSC"; manifest
  ``authorization.permissions.resourceSpecific``, v1.12 and later) — RSC needs ``webApplicationInfo.id``, the same
  app id;
* a color icon 192×192 and an outline icon 32×32 (white on transparent), generated here with zlib (no binary in
  the repository).

``--check FILE`` validates a package's manifest against the pinned JSON schema with ``jsonschema`` (in the
``.venv-tools`` lock; the Makefile runs the check with that interpreter). Exit 2 when the bot id is missing or
not a GUID, or when the package does not validate.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MANIFEST_VERSION = "1.17"
SCHEMA_ENV = "REYNOLDS_TEAMS_MANIFEST_SCHEMA"
SCHEMA_PATH = (ROOT / "node_modules" / "@microsoft" / "app-manifest" / "build" / "json-schemas" / "teams"
               / f"v{MANIFEST_VERSION}" / "MicrosoftTeams.schema.json")
DEFAULT_OUT = ROOT / "dist" / "reynolds-teams-app.zip"
APP_VERSION = "1.0.0"
ACCENT = (0x2B, 0x57, 0x9A)
RSC_PERMISSIONS = ({"name": "ChannelMessage.Read.Group", "type": "Application"},)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class PackageError(Exception):
    """The package cannot be built or does not validate (exit 2)."""


# -- icons ---------------------------------------------------------------------------------------------------------
def png(width: int, height: int, pixel: Any) -> bytes:
    """An RGBA PNG; ``pixel(x, y)`` returns ``(r, g, b, a)``."""
    rows = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def _ring(x: int, y: int, size: int) -> bool:
    """A ring (the loop Reynolds watches) centred in a ``size`` square."""
    c = (size - 1) / 2
    d = ((x - c) ** 2 + (y - c) ** 2) ** 0.5
    return size * 0.22 <= d <= size * 0.36


def color_icon() -> bytes:
    """192×192, full colour: a white ring on the accent colour."""
    return png(192, 192, lambda x, y: (255, 255, 255, 255) if _ring(x, y, 192) else (*ACCENT, 255))


def outline_icon() -> bytes:
    """32×32, white on transparent (Teams' rule for outline icons)."""
    return png(32, 32, lambda x, y: (255, 255, 255, 255) if _ring(x, y, 32) else (0, 0, 0, 0))


# -- manifest ------------------------------------------------------------------------------------------------------
def manifest(bot_id: str, *, app_host: str | None = None) -> dict[str, Any]:
    """The Teams app manifest for the bot ``bot_id`` (the Teams app id is the bot id too)."""
    if not _GUID.match(bot_id or ""):
        raise PackageError(f"the bot id must be a GUID (the Azure Bot's msaAppId), got {bot_id!r}")
    document: dict[str, Any] = {
        "$schema": f"https://developer.microsoft.com/json-schemas/teams/v{MANIFEST_VERSION}/MicrosoftTeams.schema.json",
        "manifestVersion": MANIFEST_VERSION,
        "version": APP_VERSION,
        "id": bot_id,
        "developer": {"name": "Reynolds operators", "websiteUrl": "https://github.com/",
                      "privacyUrl": "https://github.com/", "termsOfUseUrl": "https://github.com/"},
        "name": {"short": "Reynolds", "full": "Reynolds event broker"},
        "description": {
            "short": "Reynolds answers tasks and keeps automations from looping.",
            "full": ("Reynolds brokers events between GitHub, Teams and Service Bus, runs tasks with AI "
                     "specialists and stops loops between automations. Mention it in a channel or chat, or "
                     "message it directly."),
        },
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": "#{:02X}{:02X}{:02X}".format(*ACCENT),
        "bots": [{"botId": bot_id, "scopes": ["team", "groupChat", "personal"], "supportsFiles": False,
                  "isNotificationOnly": False}],
        "permissions": ["identity", "messageTeamMembers"],
        "webApplicationInfo": {"id": bot_id},
        "authorization": {"permissions": {"resourceSpecific": [dict(p) for p in RSC_PERMISSIONS]}},
    }
    if app_host:
        document["validDomains"] = [app_host]
    return document


def package(bot_id: str, *, app_host: str | None = None) -> bytes:
    """The zip Teams accepts: manifest.json and the two icons at the root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest(bot_id, app_host=app_host), indent=2))
        archive.writestr("color.png", color_icon())
        archive.writestr("outline.png", outline_icon())
    return buffer.getvalue()


# -- validation ----------------------------------------------------------------------------------------------------
def schema_path() -> Path:
    """The pinned manifest schema (``npm ci`` installs it), or the file ``REYNOLDS_TEAMS_MANIFEST_SCHEMA`` names."""
    path = Path(os.environ.get(SCHEMA_ENV) or SCHEMA_PATH)
    if not path.is_file():
        raise PackageError(f"the Teams manifest schema is not at {path}: run `npm ci` (package.json pins "
                           f"@microsoft/app-manifest) or set {SCHEMA_ENV}")
    return path


def problems(package_bytes: bytes) -> list[str]:
    """Every schema violation of the package's manifest, and a missing or wrong-sized icon (empty: valid)."""
    import jsonschema  # the .venv-tools lock has it (requirements-checkov.txt); the app's locks do not

    with zipfile.ZipFile(io.BytesIO(package_bytes)) as archive:
        names = set(archive.namelist())
        found = [f"missing {name}" for name in ("manifest.json", "color.png", "outline.png") if name not in names]
        if found:
            return found
        document = json.loads(archive.read("manifest.json"))
        icons = {"color.png": archive.read("color.png"), "outline.png": archive.read("outline.png")}
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)
    out = [f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
           for error in validator.iter_errors(document)]
    for name, size in (("color.png", 192), ("outline.png", 32)):
        width, height = struct.unpack(">II", icons[name][16:24])
        if (width, height) != (size, size):
            out.append(f"{name} is {width}x{height}, Teams wants {size}x{size}")
    return out


# -- the bot id ----------------------------------------------------------------------------------------------------
def azd_values() -> dict[str, str]:
    """``azd env get-values`` of the current environment (empty when azd or an environment is missing)."""
    try:
        result = subprocess.run(["azd", "env", "get-values"], capture_output=True, text=True, timeout=30,  # noqa: S607
                                check=False)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    values = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


def bot_settings() -> tuple[str, str | None]:
    """The bot id (``BOT_ID`` env, else azd's) and the app host (from ``SERVICE_API_URI``), when known."""
    values = {} if os.environ.get("BOT_ID") else azd_values()
    bot_id = os.environ.get("BOT_ID") or values.get("BOT_ID") or ""
    uri = os.environ.get("SERVICE_API_URI") or values.get("SERVICE_API_URI") or ""
    host = uri.removeprefix("https://").strip("/") or None
    if not bot_id:
        raise PackageError("no bot id: run `azd up` first (output BOT_ID) or pass BOT_ID=<the bot's app id>")
    return bot_id, host


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.teams_app", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the zip")
    parser.add_argument("--check", type=Path, metavar="ZIP", help="validate an existing package instead")
    args = parser.parse_args(argv)
    try:
        if args.check:
            found = problems(args.check.read_bytes())
            for problem in found:
                print(f"teams-app: {problem}", file=sys.stderr)
            if found:
                return 2
            print(f"teams-app: {args.check} is valid against manifest schema v{MANIFEST_VERSION}", file=sys.stderr)
            return 0
        bot_id, host = bot_settings()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(package(bot_id, app_host=host))
    except PackageError as exc:
        print(f"teams-app: {exc}", file=sys.stderr)
        return 2
    print(f"teams-app: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
