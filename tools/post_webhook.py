"""POST a signed GitHub delivery to a running Reynolds (``func start``, or a deployed app): a real webhook without
GitHub.

``python -m tools.post_webhook samples/issues-opened.json [--url http://localhost:7071/api/github/webhook]``

The file is a ``tools.simulate`` item (``{"source": "github", "headers": {…}, "body": {…}}``, one object). The body is
sent as compact JSON and signed as GitHub signs (``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body>``,
``shared.platforms.github.events.signature_for``) with ``GITHUB_WEBHOOK_SECRET`` from the environment, else from
``local.settings.json`` (what ``func start`` reads; ``shared.settings.app_environment``). Every delivery gets a
fresh ``X-GitHub-Delivery`` unless ``--delivery`` names one. Prints the status and the answer (verdict, reason,
chain id); exit 0 for a 2xx, 1 otherwise, 2 for bad input. The secret is never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from shared.errors import ConfigurationError
from shared.platforms.github.events import signature_for
from shared.settings import app_environment

DEFAULT_URL = "http://localhost:7071/api/github/webhook"


def signed_request(item: dict[str, Any], secret: str, delivery: str | None = None) -> tuple[dict[str, str], bytes]:
    """The headers and raw body GitHub would send for ``item``."""
    if item.get("source", "github") != "github" or not isinstance(item.get("body"), dict):
        raise ValueError("expected a GitHub item: {\"source\": \"github\", \"headers\": {…}, \"body\": {…}}")
    headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()
               if str(k).lower() not in {"x-hub-signature-256", "x-hub-signature", "x-github-delivery"}}
    if not any(k.lower() == "x-github-event" for k in headers):
        raise ValueError("the item's headers name no X-GitHub-Event")
    body = json.dumps(item["body"], separators=(",", ":")).encode()
    headers["X-GitHub-Delivery"] = delivery or str(uuid.uuid4())
    headers["X-Hub-Signature-256"] = signature_for(secret, body)
    headers.setdefault("Content-Type", "application/json")
    return headers, body


def main(argv: list[str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    """Command-line entry point (``transport``: tests)."""
    parser = argparse.ArgumentParser(prog="python -m tools.post_webhook", description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--delivery", help="X-GitHub-Delivery (default: a new GUID)")
    args = parser.parse_args(argv)
    try:
        item = json.loads(args.file.read_text(encoding="utf-8"))
        secret = app_environment().get("GITHUB_WEBHOOK_SECRET", "")
        if not secret:
            raise ConfigurationError("GITHUB_WEBHOOK_SECRET", "is not set (environment or local.settings.json)")
        headers, body = signed_request(item, secret, args.delivery)
    except (OSError, ValueError, ConfigurationError) as exc:
        print(f"post_webhook: {exc}", file=sys.stderr)
        return 2
    with httpx.Client(transport=transport, timeout=15.0) as client:
        try:
            response = client.post(args.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            print(f"post_webhook: {args.url}: {type(exc).__name__}: {exc} (is `func start` running?)", file=sys.stderr)
            return 1
    print(f"{response.status_code} {response.text}")
    return 0 if response.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
