"""The GitHub App Reynolds needs, derived from what the code calls and routes, and its manifest.

``python -m tools.github_app`` prints the derivation (each REST operation the code calls, its endpoint and the
permission it needs; each routed webhook event). ``python -m tools.github_app form --app-url https://<app>
[--org ORG] > github-app.html`` writes a page whose one button registers the App through GitHub's manifest flow
with ``github-app-manifest.json`` (webhook URL and homepage filled in): see docs/deploy.md, *GitHub App*.

How the derivation works (``tests/test_github_app.py`` compares it with the manifest and with docs/deploy.md):

* **Operations**: every ``….rest.<group>.<method>`` attribute chain in the app's code (``shared/``,
  ``activities/``, ``triggers/``, ``orchestrators/``), read with ``ast``; githubkit names its methods after the
  OpenAPI operations of github/rest-api-description, and each method's source holds the HTTP verb and the URL
  template it requests (``githubkit_schemas.*.rest.<group>``), which ``endpoint`` reads.
* **Permissions**: ``ENDPOINT_PERMISSIONS`` maps each endpoint to the permissions GitHub accepts for it with an
  installation token, from GitHub's page *Permissions required for GitHub Apps*
  (https://docs.github.com/en/rest/authentication/permissions-required-for-github-apps; read from the copy
  octokit/app-permissions keeps of it, ``cache/api.github.com.html`` at a91488b, 2023-11-01, which lists an
  endpoint under every permission that grants it; its ``generated/api.github.com.json`` keeps only one
  permission per endpoint, so it is not used). ``GET /search/code`` is missing from that copy and is filed under
  Metadata (read) by octokit/app-permissions' ``generated/api.github.com.json`` (a998087, 2025-01-30). An
  endpoint the code calls that is not in the table fails the test, naming it: add it from that page.
  The App-level endpoints (``/app/…``, ``GET /repos/{owner}/{repo}/installation``) take the App's JWT and need no
  installation permission (GitHub's REST reference for each: "You must use a JWT to access this endpoint").
* **Choosing among alternatives** (issue comments are granted by Issues *or* Pull requests): permissions that
  are the only way to reach some endpoint are taken first; an endpoint they already cover adds nothing; any other
  takes its first listed alternative. Access ``write`` includes ``read``.
* **Events**: the GitHub events ``shared.work.routing.ROUTES`` starts an orchestration for. A subscription needs
  a permission too (``EVENT_PERMISSIONS``, from GitHub's *Webhook events and payloads*: ``issues`` and
  ``issue_comment`` need at least read access to Issues), which the operations' set must already hold.
"""

from __future__ import annotations

import argparse
import ast
import html
import inspect
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "github-app-manifest.json"
#: Where the app's own code lives (tools and tests call GitHub as people do, not as Reynolds).
APP_CODE = ("shared", "activities", "triggers", "orchestrators")

Access = str  # "read" | "write"
#: (verb, URL template) → the permissions that grant it, in the page's order; () = the App's JWT, no permission.
ENDPOINT_PERMISSIONS: dict[tuple[str, str], tuple[tuple[str, Access], ...]] = {
    ("POST", "/repos/{owner}/{repo}/issues"): (("issues", "write"),),
    ("PATCH", "/repos/{owner}/{repo}/issues/{issue_number}"): (("issues", "write"), ("pull_requests", "write")),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments"): (("issues", "read"), ("pull_requests", "read")),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments"): (("issues", "write"),
                                                                         ("pull_requests", "write")),
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}"): (("issues", "write"), ("pull_requests", "write")),
    ("DELETE", "/repos/{owner}/{repo}/issues/comments/{comment_id}"): (("issues", "write"), ("pull_requests", "write")),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/labels"): (("issues", "read"), ("pull_requests", "read")),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels"): (("issues", "write"), ("pull_requests", "write")),
    ("GET", "/repos/{owner}/{repo}"): (("metadata", "read"),),
    ("GET", "/repos/{owner}/{repo}/contents/{path}"): (("contents", "read"),),
    ("GET", "/search/code"): (("metadata", "read"),),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}"): (("contents", "read"), ("pull_requests", "read")),
    ("GET", "/repos/{owner}/{repo}/actions/runs"): (("actions", "read"),),
    ("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}"): (("actions", "read"),),
    ("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs"): (("actions", "read"),),
    ("GET", "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs"): (("actions", "read"),),
    ("POST", "/repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs"): (("actions", "write"),),
    ("GET", "/repos/{owner}/{repo}/issues"): (("issues", "read"),),
    # Git database (issue 23's branch writer): listed under Contents on the page.
    ("GET", "/repos/{owner}/{repo}/git/ref/{ref}"): (("contents", "read"),),
    ("GET", "/repos/{owner}/{repo}/git/commits/{commit_sha}"): (("contents", "read"),),
    ("POST", "/repos/{owner}/{repo}/git/blobs"): (("contents", "write"),),
    ("POST", "/repos/{owner}/{repo}/git/trees"): (("contents", "write"),),
    ("POST", "/repos/{owner}/{repo}/git/commits"): (("contents", "write"),),
    ("POST", "/repos/{owner}/{repo}/git/refs"): (("contents", "write"),),
    ("PATCH", "/repos/{owner}/{repo}/git/refs/{ref}"): (("contents", "write"),),
    ("GET", "/repos/{owner}/{repo}/installation"): (),
    ("GET", "/app/hook/deliveries"): (),
    ("POST", "/app/hook/deliveries/{delivery_id}/attempts"): (),
}
#: Webhook event → the permission a subscription to it needs (any access).
EVENT_PERMISSIONS: dict[str, str] = {"issues": "issues", "issue_comment": "issues"}
#: How GitHub's settings page names each permission (docs/deploy.md uses these words).
PERMISSION_TITLES = {"actions": "Actions", "contents": "Contents", "issues": "Issues", "metadata": "Metadata",
                     "pull_requests": "Pull requests"}


@dataclass(frozen=True)
class Operation:
    """One githubkit REST method the code calls, with the endpoint it requests and where it is called."""

    group: str
    method: str
    verb: str
    path: str
    called_in: tuple[str, ...]


def called_methods(root: Path = ROOT, packages: Iterable[str] = APP_CODE) -> dict[tuple[str, str], list[str]]:
    """``(group, method)`` of every ``….rest.<group>.<method>`` chain in the packages → the files calling it."""
    found: dict[tuple[str, str], list[str]] = {}
    for package in packages:
        for file in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                        and isinstance(node.value.value, ast.Attribute) and node.value.value.attr == "rest"):
                    key = (node.value.attr, node.attr.removeprefix("async_"))
                    found.setdefault(key, [])
                    relative = str(file.relative_to(root))
                    if relative not in found[key]:
                        found[key].append(relative)
    return found


def endpoint(group: str, method: str) -> tuple[str, str]:
    """The HTTP verb and URL template githubkit's ``rest.<group>.<method>`` requests (read from its source)."""
    from githubkit import GitHub

    client = GitHub("unused")
    source = inspect.getsource(getattr(getattr(client.rest, group), method))
    urls = set(re.findall(r'url = f?"([^"]+)"', source))
    verbs = set(re.findall(r'request\(\s*"([A-Z]+)"', source))
    if len(urls) != 1 or len(verbs) != 1:
        raise ValueError(f"rest.{group}.{method}: cannot read one endpoint from githubkit ({urls}, {verbs})")
    return verbs.pop(), urls.pop()


def operations(root: Path = ROOT) -> list[Operation]:
    """Every REST operation the app's code calls."""
    return [Operation(group, method, *endpoint(group, method), tuple(files))
            for (group, method), files in sorted(called_methods(root).items())]


def _grants(held: Mapping[str, Access], permission: str, access: Access) -> bool:
    return held.get(permission) == "write" or held.get(permission) == access


def required_permissions(ops: Iterable[Operation],
                         table: Mapping[tuple[str, str], tuple[tuple[str, Access], ...]] = ENDPOINT_PERMISSIONS,
                         events: Iterable[str] = ()) -> dict[str, Access]:
    """The smallest set of permissions that reaches every operation (see the module docstring for the choice);
    ``KeyError`` naming an endpoint the table does not know, or an event without a known permission."""
    options = []
    for op in ops:
        key = (op.verb, op.path)
        if key not in table:
            raise KeyError(f"{op.verb} {op.path} (rest.{op.group}.{op.method}, called in {', '.join(op.called_in)}) "
                           "has no entry in ENDPOINT_PERMISSIONS: add it from GitHub's 'Permissions required for "
                           "GitHub Apps' page")
        if table[key]:
            options.append(table[key])
    held: dict[str, Access] = {}

    def take(permission: str, access: Access) -> None:
        if not _grants(held, permission, access):
            held[permission] = access

    for only in (o for o in options if len(o) == 1):
        take(*only[0])
    for alternatives in (o for o in options if len(o) > 1):
        if not any(_grants(held, p, a) for p, a in alternatives):
            take(*alternatives[0])
    for event in events:
        if event not in EVENT_PERMISSIONS:
            raise KeyError(f"webhook event {event!r} has no entry in EVENT_PERMISSIONS")
        if EVENT_PERMISSIONS[event] not in held:
            held[EVENT_PERMISSIONS[event]] = "read"
    return dict(sorted(held.items()))


def routed_events() -> list[str]:
    """The GitHub webhook events an orchestration starts for (``shared.work.routing.ROUTES``)."""
    from shared.loop.envelope import Platform
    from shared.work.routing import ROUTES

    return sorted({name.split(".", 1)[0] for platform, name in ROUTES if platform is Platform.GITHUB})


def derived() -> tuple[dict[str, Access], list[str]]:
    """The permissions and events the code needs."""
    events = routed_events()
    return required_permissions(operations(), events=events), events


def differences(permissions: Mapping[str, Access], events: Iterable[str], *,
                have_permissions: Mapping[str, Any], have_events: Iterable[str], where: str) -> list[str]:
    """Every permission or event that ``where`` lacks, has too much of, or grants at another access."""
    problems = []
    for name, access in sorted(permissions.items()):
        if name not in have_permissions:
            problems.append(f"{where}: missing permission {name}: {access}")
        elif have_permissions[name] != access:
            problems.append(f"{where}: permission {name} is {have_permissions[name]}, the code needs {access}")
    problems += [f"{where}: extra permission {name}: {have_permissions[name]} (nothing the code calls needs it)"
                 for name in sorted(set(have_permissions) - set(permissions))]
    wanted, have = set(events), set(have_events)
    problems += [f"{where}: missing event {name}" for name in sorted(wanted - have)]
    problems += [f"{where}: extra event {name} (never routed)" for name in sorted(have - wanted)]
    return problems


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    """The App manifest file."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def filled(manifest: Mapping[str, Any], app_url: str, name: str | None = None) -> dict[str, Any]:
    """The manifest with the deployed app's URL in the webhook URL and homepage (``<app-url>`` placeholders)."""
    base = app_url.rstrip("/")
    if not re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d+)?", base):
        raise ValueError(f"--app-url must be the app's https origin, e.g. https://func-api-x.azurewebsites.net "
                         f"(got {app_url!r})")
    text = json.dumps(manifest).replace("<app-url>", base)
    data: dict[str, Any] = json.loads(text)
    if name:
        data["name"] = name
    return data


def form_page(manifest: Mapping[str, Any], org: str | None = None) -> str:
    """A page whose button POSTs ``manifest`` to GitHub's registration page (the manifest flow's first step)."""
    target = (f"https://github.com/organizations/{org}/settings/apps/new" if org
              else "https://github.com/settings/apps/new")
    value = html.escape(json.dumps(manifest), quote=True)
    return ("<!doctype html><meta charset=utf-8><title>Register the Reynolds GitHub App</title>\n"
            f'<form action="{html.escape(target, quote=True)}" method="post">\n'
            f'<input type="hidden" name="manifest" value="{value}">\n'
            '<p>GitHub shows the App it will create (name, webhook, permissions, events); you may rename it.</p>\n'
            '<button type="submit">Create the GitHub App on GitHub</button>\n</form>\n')


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.github_app", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    form = sub.add_parser("form", help="write the manifest-flow page for a deployed app (stdout)")
    form.add_argument("--app-url", required=True, help="https://<app>.azurewebsites.net (azd env get-value "
                      "SERVICE_API_URI)")
    form.add_argument("--org", help="register the App under this organisation (default: your user account)")
    form.add_argument("--name", help="the App's name (default: the manifest's; GitHub makes the slug from it)")
    args = parser.parse_args(argv)
    if args.command == "form":
        try:
            print(form_page(filled(load_manifest(), args.app_url, args.name), args.org), end="")
        except ValueError as exc:
            print(f"github_app: {exc}", file=sys.stderr)
            return 2
        return 0
    permissions, events = derived()
    for op in operations():
        grants = ENDPOINT_PERMISSIONS.get((op.verb, op.path))
        needs = " or ".join(f"{p}:{a}" for p, a in grants) if grants else "App JWT"
        print(f"rest.{op.group}.{op.method:<40} {op.verb:<6} {op.path:<55} {needs}")
    print(f"permissions: {json.dumps(permissions)}")
    print(f"events: {json.dumps(events)}")
    problems = differences(permissions, events, have_permissions=load_manifest().get("default_permissions", {}),
                           have_events=load_manifest().get("default_events", []), where=MANIFEST.name)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
