"""The fake GitHub's read routes for repository metadata, contents and code search (the specialists' read tools).

Modelled on GitHub's REST reference as githubkit encodes it (``githubkit_schemas/v2026_03_10/rest/repos.py``,
``ReposClient.get_content`` and ``ReposClient.get``; ``…/rest/search.py``, ``SearchClient.code``):

- ``GET /repos/{owner}/{repo}/contents/{path}?ref=`` answers a file as an object (``type: "file"``,
  ``encoding: "base64"``, ``content``, ``size``, ``sha``, ``path``, ``name``) and a directory as an array of entries;
  an empty path is the root; an unknown path or ref is 404 ``Not Found`` / ``No commit found for the ref``.
- ``GET /search/code?q=`` searches only the repositories, users and organisations its qualifiers name
  (``repo:``, ``user:``, ``org:``); a query without one is refused with 422 (legacy code search requires a scope)
  and the plain terms must all occur in a file. Each item carries ``repository.full_name``.

Files live per fake in :data:`FILES` (seeded with :func:`add_file`); every request is recorded by the fake, so a
test sees exactly which repositories were read.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from tools.fakes.github.records import JSON, OWNER_REPO, Handler, HttpError, RequestContext, error_body

if TYPE_CHECKING:
    from tools.fakes.github.fake import FakeGitHub

_D_CONTENTS = "https://docs.github.com/rest/repos/contents"
_D_REPOS = "https://docs.github.com/rest/repos/repos"
_D_SEARCH = "https://docs.github.com/rest/search/search"
DEFAULT_BRANCH = "main"

#: fake → repo full name (lower-case) → ref → path → bytes
FILES: WeakKeyDictionary[Any, dict[str, dict[str, dict[str, bytes]]]] = WeakKeyDictionary()


def add_file(fake: FakeGitHub, repo: str, path: str, text: str | bytes, ref: str = DEFAULT_BRANCH) -> None:
    """Seed ``repo`` (which must exist on the fake) with a file at ``path`` on ``ref``."""
    if repo not in fake._repos:
        raise KeyError(f"unknown repository {repo}")
    data = text.encode() if isinstance(text, str) else text
    FILES.setdefault(fake, {}).setdefault(repo.lower(), {}).setdefault(ref, {})[path.strip("/")] = data


def _files(fake: FakeGitHub, repo: str, ref: str | None, doc: str) -> dict[str, bytes]:
    refs = FILES.get(fake, {}).get(repo.lower(), {})
    wanted = ref or DEFAULT_BRANCH
    if wanted not in refs:
        if ref is None:
            return {}
        raise HttpError(404, error_body(404, f"No commit found for the ref {ref}", doc))
    return refs[wanted]


def _sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's object id, not security


def _entry(fake: FakeGitHub, repo: str, path: str, kind: str, data: bytes | None) -> dict[str, Any]:
    api = fake._api
    return {"type": kind, "name": path.rsplit("/", 1)[-1], "path": path, "size": len(data or b""),
            "sha": _sha(data or path.encode()), "url": f"{api}/repos/{repo}/contents/{path}",
            "html_url": f"https://github.com/{repo}/blob/{DEFAULT_BRANCH}/{path}", "git_url": None,
            "download_url": None, "_links": {"self": f"{api}/repos/{repo}/contents/{path}", "git": None,
                                             "html": f"https://github.com/{repo}/blob/{DEFAULT_BRANCH}/{path}"}}


def get_repository(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``GET /repos/{owner}/{repo}``."""
    record = fake._repos[f"{ctx.params['owner']}/{ctx.params['repo']}"]
    rendered = fake._render_repo(record)
    rendered.setdefault("default_branch", DEFAULT_BRANCH)
    # The full repository object (githubkit's FullRepository) also counts watchers and the fork network.
    rendered.setdefault("subscribers_count", 0)
    rendered.setdefault("network_count", 0)
    return 200, rendered


def get_content(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``GET /repos/{owner}/{repo}/contents/{path}``: a file object, a directory array, or 404."""
    repo = f"{ctx.params['owner']}/{ctx.params['repo']}"
    path = (ctx.params.get("path") or "").strip("/")
    files = _files(fake, repo, ctx.query.get("ref"), ctx.doc)
    if path in files:
        data = files[path]
        entry = _entry(fake, repo, path, "file", data)
        entry.update(encoding="base64", content=base64.b64encode(data).decode())
        return 200, entry
    prefix = f"{path}/" if path else ""
    children: dict[str, dict[str, Any]] = {}
    for name, data in files.items():
        if name.startswith(prefix):
            head, sep, _rest = name[len(prefix):].partition("/")
            child = prefix + head
            children[child] = _entry(fake, repo, child, "dir" if sep else "file", None if sep else data)
    if not children and path:
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    return 200, [children[name] for name in sorted(children)]


_SCOPES = ("repo", "user", "org")


def search_code(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``GET /search/code?q=``: plain terms, all required, within the repos/users/orgs the qualifiers name."""
    q = ctx.query.get("q", "")
    try:
        tokens = shlex.split(q)
    except ValueError:
        tokens = q.split()
    scopes: dict[str, list[str]] = {name: [] for name in _SCOPES}
    terms: list[str] = []
    for token in tokens:
        key, sep, value = token.partition(":")
        if sep and key.lower() in scopes:
            scopes[key.lower()].append(value.lower())
        elif not sep:
            terms.append(token)
    if not any(scopes.values()) or not terms:
        raise HttpError(422, error_body(422, "Validation Failed", ctx.doc, errors=[
            {"message": "Must include at least one user, organization, or repository", "resource": "Search",
             "field": "q", "code": "invalid"}]))
    items = []
    for full_name in sorted(fake._repos):
        owner = full_name.split("/", 1)[0].lower()
        if not (full_name.lower() in scopes["repo"] or owner in scopes["user"] or owner in scopes["org"]):
            continue
        for path, data in sorted(_files(fake, full_name, None, ctx.doc).items()):
            text = data.decode("utf-8", errors="replace").lower()
            if all(term.lower() in text for term in terms):
                item = _entry(fake, full_name, path, "file", data)
                items.append({"name": item["name"], "path": path, "sha": item["sha"], "url": item["url"],
                              "git_url": item["git_url"], "html_url": item["html_url"], "score": 1.0,
                              "repository": {"id": fake._repos[full_name].id, "full_name": full_name,
                                             "name": full_name.split("/", 1)[1]}})
    per_page = max(1, min(100, int(ctx.query.get("per_page") or 30)))
    return 200, {"total_count": len(items), "incomplete_results": False, "items": items[:per_page]}


ROUTE_SPECS: list[tuple[str, str, Handler, str]] = [
    ("GET", OWNER_REPO, get_repository, f"{_D_REPOS}#get-a-repository"),
    ("GET", OWNER_REPO + r"/contents(?P<path>(?:/.*)?)", get_content, f"{_D_CONTENTS}#get-repository-content"),
    ("GET", r"/search/code", search_code, f"{_D_SEARCH}#search-code"),
]
ROUTES = [(m, re.compile(p), h, d) for m, p, h, d in ROUTE_SPECS]
