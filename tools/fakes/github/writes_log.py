"""The ``"writes"`` of a simulate or arena line: every write request one login made to the fake GitHub, in order.

Each entry is ``{"platform": "github", "method", "path", "kind", "target", "sha256", "status"}``: ``path`` is the
REST path as requested (no query string), ``sha256`` the hex digest of the raw request body (of ``b""`` when
there is none), ``status`` what the fake answered (a refused write is a write request too). ``kind`` and
``target`` come from the route:

| route | kind | target |
|---|---|---|
| ``POST /repos/{o}/{r}/issues`` | ``issue`` | ``o/r`` |
| ``PATCH /repos/{o}/{r}/issues/{n}`` | ``issue_edit`` | ``o/r#n`` |
| ``POST /repos/{o}/{r}/issues/{n}/comments`` | ``comment`` | ``o/r#n`` |
| ``PATCH``/``DELETE …/issues/comments/{id}`` | ``comment_edit``/``comment_delete`` | ``o/r#n`` (its issue) |
| ``POST /repos/{o}/{r}/issues/{n}/labels`` | ``label`` | ``o/r#n`` |
| ``DELETE /repos/{o}/{r}/issues/{n}/labels/{name}`` | ``unlabel`` | ``o/r#n`` |
| ``POST …/reactions`` | ``reaction`` | ``o/r#n`` or the comment's issue |
| ``POST /repos/{o}/{r}/actions/runs/{id}/rerun-failed-jobs`` | ``rerun`` | ``o/r/actions/runs/{id}`` |
| ``POST /app/hook/deliveries/{id}/attempts`` | ``redelivery`` | ``app/hook/deliveries/{id}`` |

Use: ``writes = record_writes(world.github, REYNOLDS_LOGIN)`` once, then ``writes[before:]`` per item.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tools.fakes.github import app_api
from tools.fakes.github.records import WRITE_METHODS

if TYPE_CHECKING:
    from tools.fakes.github.fake import FakeGitHub

_REPO = r"/repos/(?P<repo>[^/]+/[^/]+)"
_KINDS: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(_REPO + r"/issues"), "issue"),
    ("PATCH", re.compile(_REPO + r"/issues/(?P<number>\d+)"), "issue_edit"),
    ("POST", re.compile(_REPO + r"/issues/(?P<number>\d+)/comments"), "comment"),
    ("PATCH", re.compile(_REPO + r"/issues/comments/(?P<comment>\d+)"), "comment_edit"),
    ("DELETE", re.compile(_REPO + r"/issues/comments/(?P<comment>\d+)"), "comment_delete"),
    ("POST", re.compile(_REPO + r"/issues/(?P<number>\d+)/labels"), "label"),
    ("DELETE", re.compile(_REPO + r"/issues/(?P<number>\d+)/labels/[^/]+"), "unlabel"),
    ("POST", re.compile(_REPO + r"/issues/(?P<number>\d+)/reactions"), "reaction"),
    ("POST", re.compile(_REPO + r"/issues/comments/(?P<comment>\d+)/reactions"), "reaction"),
    ("POST", re.compile(_REPO + r"/actions/runs/(?P<run>\d+)/rerun-failed-jobs"), "rerun"),
    ("POST", re.compile(r"/app/hook/deliveries/(?P<delivery>\d+)/attempts"), "redelivery"),
]


def describe(fake: FakeGitHub, method: str, path: str) -> tuple[str, str]:
    """``(kind, target)`` of a write request (``("other", path)`` for a route not in the table)."""
    for verb, pattern, kind in _KINDS:
        match = pattern.fullmatch(path)
        if verb != method or match is None:
            continue
        groups = match.groupdict()
        repo = groups.get("repo")
        if groups.get("number"):
            return kind, f"{repo}#{groups['number']}"
        if groups.get("comment"):
            # Called with the fake's lock held: read its table directly, never through a locking accessor.
            comment = fake._comments.get(int(groups["comment"]))
            if comment is None:  # deleted by this very request
                return kind, f"{repo}/issues/comments/{groups['comment']}"
            return kind, f"{repo}#{comment.number}"
        if groups.get("run"):
            return kind, f"{repo}/actions/runs/{groups['run']}"
        if groups.get("delivery"):
            return kind, f"app/hook/deliveries/{groups['delivery']}"
        return kind, str(repo)
    return "other", path


def record_writes(fake: FakeGitHub, login: str | None = None) -> list[dict[str, Any]]:
    """Start recording the write requests ``login`` (every login when None) makes; returns the live list."""
    entries: list[dict[str, Any]] = []

    def observe(method: str, target: str, raw: bytes, who: str | None, status: int) -> None:
        if method not in WRITE_METHODS or (login is not None and who != login):
            return
        if getattr(app_api.write_faults(fake).replaying, "on", False):
            return  # GitHub storing an earlier request late (``commit_late``): not a new request
        path = urlsplit(target).path
        kind, where = describe(fake, method, path)
        entries.append({"platform": "github", "method": method, "path": path, "kind": kind, "target": where,
                        "sha256": hashlib.sha256(raw).hexdigest(), "status": status})

    fake.on_request.append(observe)
    return entries


def seed_repo_files(fake: FakeGitHub, repo_files: dict[str, dict[str, str]] | None) -> None:
    """Serve ``{"owner/repo": {"path": "text"}}`` through the contents API (repositories created as needed).

    The ``"repo_files"`` of a simulate item or arena scenario; ``None`` or ``{}`` does nothing. A repository
    that exists keeps its issues; a path given twice keeps the last text.
    """
    from tools.fakes.github.repos_api import add_file

    for repo, files in (repo_files or {}).items():
        if not isinstance(files, dict) or "/" not in repo:
            raise ValueError(f"repo_files: {repo!r} must be 'owner/name' mapping paths to texts")
        if repo not in fake._repos:
            fake.add_repo(repo)
        for path, text in files.items():
            if not isinstance(text, str):
                raise ValueError(f"repo_files: {repo} {path} must be text")
            add_file(fake, repo, path, text)
