"""A stateful, strict fake of GitHub's REST API for the issues surface Reynolds uses.

It is a real HTTP server on loopback, so the production githubkit client reaches it through its ordinary
``base_url`` setting and every byte goes through httpx, githubkit's error mapping and its pydantic models.
It speaks GitHub's wire format (objects, status codes, error bodies, rate-limit headers, ``Link`` pagination,
ETag revalidation) and refuses whatever it does not implement: an unknown route or an unimplemented request
field answers 404/422 *and* is recorded in ``unexpected``, which ``assert_no_unexpected()`` turns into a
test failure. A fake that accepts any request is a defect.

Every successful write produces a ``WriteEvent`` passed to the ``on_write`` callbacks; ``webhook_for`` turns
it into the payload GitHub would deliver, so a simulated world can feed the fake's writes back into the
webhook trigger the way GitHub does.
"""


from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from tools.fakes.github import actions_api, app_api, git_api, issue_lists_api, issues_api, pulls_api, repos_api
from tools.fakes.github.records import (
    ASSOCIATIONS,
    GITHUB_WEB,
    JSON,
    PRIMARY_LIMIT_DOCS,
    REACTIONS,
    SECONDARY_LIMIT_DOCS,
    WRITE_METHODS,
    Association,
    CommentRecord,
    FakeGitHubError,
    FaultRule,
    HttpError,
    IssueRecord,
    RateBucket,
    RawBody,
    ReactionRecord,
    RecordedCall,
    RepoRecord,
    RequestContext,
    UserType,
    WriteEvent,
    error_body,
    node_id,
    timestamp,
    utc_now,
)

logger = logging.getLogger(__name__)


class FakeGitHub:
    """Strict in-memory GitHub REST server on 127.0.0.1 (port chosen by the OS)."""

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        *,
        installation_id: int = 1,
        rate_limit: int = 5000,
    ) -> None:
        self.clock: Callable[[], datetime] = clock or utc_now
        self.installation_id = installation_id
        self.rate_limit = rate_limit
        self.on_write: list[Callable[[WriteEvent], None]] = []
        #: Called for every request with (method, path with query, raw body, login, status), in order.
        self.on_request: list[Callable[[str, str, bytes, str | None, int], None]] = []
        self.hook_errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._next_id = 1_000_000
        self._request_seq = 0
        self._users: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, str] = {}
        self._repos: dict[str, RepoRecord] = {}
        self._comments: dict[int, CommentRecord] = {}
        self._reactions: dict[tuple[str, int], list[ReactionRecord]] = {}
        self._buckets: dict[str, RateBucket] = {}
        self._rules: list[FaultRule] = []
        self._calls: list[RecordedCall] = []
        self._unexpected: list[str] = []
        # Bound now so that base_url (and the API urls inside objects) are known before start().
        self._server = _Server(("127.0.0.1", 0), _RequestHandler)
        self._server.fake = self
        self._thread: threading.Thread | None = None
        port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/"
        self._api = self.base_url.rstrip("/")

    # ----------------------------------------------------------------------------------------- lifecycle
    def start(self) -> FakeGitHub:
        """Serve requests from a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="fake-github", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------- seeding
    def add_user(self, login: str, type: UserType = "User", token: str | None = None) -> dict[str, Any]:
        """Register a user (or ``Bot``) and, when ``token`` is given, a token that authenticates as it."""
        with self._lock:
            user = self._ensure_user(login, type)
            if token is not None:
                self._tokens[token] = login
            return dict(user)

    def token_for(self, login: str) -> str:
        """A token for ``login`` (registering one when the user has none)."""
        with self._lock:
            if login not in self._users:
                raise KeyError(login)
            for token, owner in self._tokens.items():
                if owner == login:
                    return token
            token = f"ghs_fake_{login}"
            self._tokens[token] = login
            return token

    def user(self, login: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._users[login])

    def add_repo(self, full_name: str) -> dict[str, Any]:
        """Create a repository; its owner is registered as a user and is the repo's OWNER."""
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"repository must be 'owner/name', got {full_name!r}")
        with self._lock:
            if full_name in self._repos:
                raise ValueError(f"repository {full_name} exists")
            self._ensure_user(owner, "User")
            repo = RepoRecord(id=self._new_id(), owner=owner, name=name, created_at=self.clock())
            repo.associations[owner] = "OWNER"
            self._repos[full_name] = repo
            return self._render_repo(repo)

    def set_association(self, repo: str, login: str, association: Association) -> None:
        if association not in ASSOCIATIONS:
            raise ValueError(association)
        with self._lock:
            self._repo(repo).associations[login] = association

    def add_label(self, repo: str, name: str, color: str = "ededed", description: str | None = None) -> dict[str, Any]:
        with self._lock:
            return dict(self._ensure_label(self._repo(repo), name, color, description))

    def add_issue(
        self,
        repo: str,
        number: int | None = None,
        title: str = "An issue",
        body: str | None = None,
        login: str | None = None,
        labels: list[str] | None = None,
    ) -> dict[str, Any]:
        """Seed an issue without recording a call or firing hooks (setup, not simulated activity)."""
        with self._lock:
            r = self._repo(repo)
            login = login or r.owner
            self._ensure_user(login, "User")
            issue = self._new_issue(r, title, body, login, number)
            for name in labels or []:
                self._apply_label(r, issue, name)
            return self._render_issue(r, issue)

    # ----------------------------------------------------------------------------------- error injection
    def fail_next(
        self,
        method: str | None,
        path_regex: str,
        status: int,
        body: JSON = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching requests (``method`` None = any) with ``status``.

        ``path_regex`` is searched in the request path (no query string). Auth and rate limiting apply first.
        """
        if body is None:
            body = error_body(status, HTTPStatus(status).phrase)
        with self._lock:
            self._rules.append(
                FaultRule(
                    method.upper() if method else None, re.compile(path_regex), status, body, dict(headers or {}), times
                )
            )

    def secondary_rate_limit(
        self,
        method: str | None = "POST",
        path_regex: str = r".*",
        retry_after: int | None = 60,
        status: int = 403,
        times: int = 1,
    ) -> None:
        """GitHub's secondary-limit answer: 403 (or 429) with ``retry-after`` and ``x-ratelimit-remaining`` left."""
        if status not in (403, 429):
            raise ValueError("secondary rate limits answer 403 or 429")
        headers = {} if retry_after is None else {"retry-after": str(retry_after)}
        # The request id is filled in per response, as GitHub does.
        body = error_body(
            status,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach "
            "out to GitHub Support for help, please include the request ID {request_id}.",
            SECONDARY_LIMIT_DOCS,
        )
        self.fail_next(method, path_regex, status, body, headers, times)

    def fail_after_write(self, method: str, path_regex: str, status: int = 502, times: int = 1) -> None:
        """Store the next ``times`` matching writes, then answer ``status`` (see ``app_api``)."""
        app_api.fail_after_write(self, method, path_regex, status, times)

    def commit_late(self, method: str, path_regex: str, delay_seconds: float = 15.0, status: int = 504,
                    times: int = 1) -> None:
        """Answer the next ``times`` matching writes ``status`` and store them ``delay_seconds`` later."""
        app_api.commit_late(self, method, path_regex, delay_seconds, status, times)

    def clear_faults(self) -> None:
        """Forget every injected failure that has not fired yet (late writes already accepted still land)."""
        with self._lock:
            self._rules.clear()
            faults = app_api.write_faults(self)
            faults.after.clear()
            faults.late.clear()

    def set_rate_limit_remaining(self, login: str, remaining: int) -> None:
        """Set the primary budget of every token of ``login``; at 0 requests get 403 ``API rate limit exceeded``."""
        with self._lock:
            keys = [t for t, who in self._tokens.items() if who == login] + [f"act:{login}"]
            for key in keys:
                self._bucket(key).remaining = remaining

    # ----------------------------------------------------------------------------------------- recording
    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    @property
    def unexpected(self) -> list[str]:
        with self._lock:
            return list(self._unexpected)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def writes(self, include_failed: bool = False) -> list[RecordedCall]:
        """Content-creating/editing calls (POST/PATCH/PUT/DELETE), successful ones unless ``include_failed``."""
        return [c for c in self.calls if c.method in WRITE_METHODS and (include_failed or 200 <= c.status < 300)]

    def assert_no_unexpected(self) -> None:
        with self._lock:
            problems = list(self._unexpected) + [f"on_write hook raised {e!r}" for e in self.hook_errors]
        if problems:
            raise AssertionError("fake GitHub got requests it does not implement:\n  " + "\n  ".join(problems))

    def issue(self, repo: str, number: int) -> dict[str, Any]:
        with self._lock:
            r = self._repo(repo)
            return self._render_issue(r, r.issues[number])

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self._lock:
            r = self._repo(repo)
            return [self._render_comment(r, c) for c in self._issue_comments(r, number)]

    def labels(self, repo: str, number: int) -> list[str]:
        with self._lock:
            r = self._repo(repo)
            return [r.labels[k]["name"] for k in r.issues[number].labels]

    def reactions(self, repo: str, *, number: int | None = None, comment_id: int | None = None) -> list[dict]:
        """Reactions on issue ``number`` or on comment ``comment_id``."""
        with self._lock:
            if comment_id is not None:
                key = ("comment", comment_id)
            elif number is not None:
                key = ("issue", self._repo(repo).issues[number].id)
            else:
                raise ValueError("give number or comment_id")
            return [self._render_reaction(x) for x in self._reactions.get(key, [])]

    # ---------------------------------------------------------------------------- acting (same code path)
    def act(self, login: str, method: str, path: str, json_body: JSON = None) -> tuple[int, JSON]:
        """Perform a request as ``login`` through the exact handler used for HTTP (recording, hooks, limits)."""
        raw = b"" if json_body is None else json.dumps(json_body).encode()
        status, headers, payload = self._process(method.upper(), path, raw, login=login)
        if headers.get("content-type", "").startswith("text/"):
            return status, payload.decode()
        return status, (json.loads(payload) if payload else None)

    def create_comment(self, repo: str, number: int, body: str, login: str) -> dict[str, Any]:
        return self._act_ok(login, "POST", f"/repos/{repo}/issues/{number}/comments", {"body": body})

    def edit_comment(self, repo: str, comment_id: int, body: str, login: str) -> dict[str, Any]:
        return self._act_ok(login, "PATCH", f"/repos/{repo}/issues/comments/{comment_id}", {"body": body})

    def create_issue(
        self, repo: str, title: str, body: str | None, login: str, number: int | None = None
    ) -> dict[str, Any]:
        if number is not None:
            with self._lock:
                r = self._repo(repo)
                if number in r.issues or number < r.next_number:
                    raise ValueError(f"issue number {number} is taken or below the next number {r.next_number}")
                r.next_number = number
        payload: dict[str, Any] = {"title": title}
        if body is not None:
            payload["body"] = body
        return self._act_ok(login, "POST", f"/repos/{repo}/issues", payload)

    def add_labels(self, repo: str, number: int, labels: list[str], login: str) -> list[dict[str, Any]]:
        return self._act_ok(login, "POST", f"/repos/{repo}/issues/{number}/labels", {"labels": labels})

    def react(
        self, repo: str, content: str, login: str, *, number: int | None = None, comment_id: int | None = None
    ) -> dict[str, Any]:
        path = (
            f"/repos/{repo}/issues/comments/{comment_id}/reactions"
            if comment_id is not None
            else f"/repos/{repo}/issues/{number}/reactions"
        )
        return self._act_ok(login, "POST", path, {"content": content})

    def _act_ok(self, login: str, method: str, path: str, body: JSON) -> Any:
        status, payload = self.act(login, method, path, body)
        if not 200 <= status < 300:
            raise FakeGitHubError(status, payload)
        return payload

    # ------------------------------------------------------------------------------------------ webhooks
    def webhook_for(self, write: WriteEvent) -> tuple[str, dict[str, Any]] | None:
        """The (event name, payload) GitHub delivers for ``write``; None when GitHub sends none (reactions)."""
        with self._lock:
            repo = self._render_repo(self._repo(write.repo))
        common: dict[str, Any] = {
            "repository": repo,
            "sender": write.actor,
            "installation": {
                "id": self.installation_id,
                "node_id": node_id("IntegrationInstallation", self.installation_id),
            },
        }
        issue = write.issue
        if write.kind in ("comment", "comment_edit", "comment_delete"):
            action = {"comment": "created", "comment_edit": "edited", "comment_delete": "deleted"}[write.kind]
            payload: dict[str, Any] = {"action": action}
            if write.kind == "comment_edit":
                payload["changes"] = write.changes or {}
            payload.update({"issue": issue, "comment": write.resource})
            return "issue_comment", {**payload, **common}
        if write.kind in ("issue", "issue_edit", "issue_state"):
            if write.kind == "issue":
                action = "opened"
            elif write.kind == "issue_edit":
                action = "edited"
            else:
                action = "closed" if issue["state"] == "closed" else "reopened"
            payload = {"action": action, "issue": issue}
            if write.kind == "issue_edit":
                payload["changes"] = write.changes or {}
            return "issues", {**payload, **common}
        if write.kind == "review":  # GitHub's pull_request_review event (submitted)
            return "pull_request_review", {"action": "submitted", "review": write.resource,
                                           "pull_request": issue, **common}
        if write.kind == "push":  # the head branch of an open pull request moved
            return "pull_request", {"action": "synchronize", "number": write.number,
                                    "before": write.resource["before"], "after": write.resource["after"],
                                    "pull_request": issue, **common}
        if write.kind in ("label", "unlabel"):
            action = "labeled" if write.kind == "label" else "unlabeled"
            return "issues", {"action": action, "issue": issue, "label": write.label, **common}
        return None

    # ======================================================================================== internals
    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _ensure_user(self, login: str, type_: str) -> dict[str, Any]:
        if login in self._users:
            return self._users[login]
        uid = self._new_id()
        html = f"{GITHUB_WEB}/apps/{login.removesuffix('[bot]')}" if type_ == "Bot" else f"{GITHUB_WEB}/{login}"
        u = f"{self._api}/users/{login}"
        user = {
            "login": login,
            "id": uid,
            "node_id": node_id(type_, uid),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
            "gravatar_id": "",
            "url": u,
            "html_url": html,
            "followers_url": f"{u}/followers",
            "following_url": f"{u}/following{{/other_user}}",
            "gists_url": f"{u}/gists{{/gist_id}}",
            "starred_url": f"{u}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{u}/subscriptions",
            "organizations_url": f"{u}/orgs",
            "repos_url": f"{u}/repos",
            "events_url": f"{u}/events{{/privacy}}",
            "received_events_url": f"{u}/received_events",
            "type": type_,
            "user_view_type": "public",
            "site_admin": False,
        }
        self._users[login] = user
        return user

    def _repo(self, full_name: str) -> RepoRecord:
        try:
            return self._repos[full_name]
        except KeyError:
            raise KeyError(f"unknown repository {full_name}") from None

    def _new_issue(self, r: RepoRecord, title: str, body: str | None, login: str, number: int | None) -> IssueRecord:
        if number is None:
            number = r.next_number
        if number in r.issues:
            raise ValueError(f"issue {r.full_name}#{number} exists")
        now = self.clock()
        issue = IssueRecord(
            id=self._new_id(), number=number, title=title, body=body, login=login, created_at=now, updated_at=now
        )
        r.issues[number] = issue
        r.next_number = max(r.next_number, number + 1)
        return issue

    def _ensure_label(self, r: RepoRecord, name: str, color: str = "ededed", description: str | None = None) -> dict:
        key = name.lower()
        if key not in r.labels:
            lid = self._new_id()
            r.labels[key] = {
                "id": lid,
                "node_id": node_id("Label", lid),
                "url": f"{self._api}/repos/{r.full_name}/labels/{name}",
                "name": name,
                "color": color,
                "default": False,
                "description": description,
                "archived_at": None,
                "archived_by": None,
            }
        return r.labels[key]

    def _apply_label(self, r: RepoRecord, issue: IssueRecord, name: str) -> dict[str, Any] | None:
        """Attach a label (created when missing); returns it when newly attached."""
        label = self._ensure_label(r, name)
        key = label["name"].lower()
        if key in issue.labels:
            return None
        issue.labels.append(key)
        return label

    def _association(self, r: RepoRecord, login: str) -> str:
        return r.associations.get(login, "NONE")

    def _rollup(self, url: str, key: tuple[str, int]) -> dict[str, Any]:
        counts = dict.fromkeys(REACTIONS, 0)
        for reaction in self._reactions.get(key, []):
            counts[reaction.content] += 1
        return {"url": url, "total_count": sum(counts.values()), **counts}

    def _issue_comments(self, r: RepoRecord, number: int) -> list[CommentRecord]:
        return [c for c in self._comments.values() if c.repo == r.full_name and c.number == number]

    def _render_issue(self, r: RepoRecord, issue: IssueRecord) -> dict[str, Any]:
        base = f"{self._api}/repos/{r.full_name}/issues/{issue.number}"
        return {
            "url": base,
            "repository_url": f"{self._api}/repos/{r.full_name}",
            "labels_url": f"{base}/labels{{/name}}",
            "comments_url": f"{base}/comments",
            "events_url": f"{base}/events",
            "html_url": f"{GITHUB_WEB}/{r.full_name}/issues/{issue.number}",
            "id": issue.id,
            "node_id": node_id("Issue", issue.id),
            "number": issue.number,
            "title": issue.title,
            "user": dict(self._users[issue.login]),
            "labels": [dict(r.labels[k]) for k in issue.labels],
            "state": issue.state,
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": len(self._issue_comments(r, issue.number)),
            "created_at": timestamp(issue.created_at),
            "updated_at": timestamp(issue.updated_at),
            "closed_at": timestamp(issue.closed_at) if issue.closed_at else None,
            "author_association": self._association(r, issue.login),
            "type": None,
            "active_lock_reason": None,
            "sub_issues_summary": {"total": 0, "completed": 0, "percent_completed": 0},
            "body": issue.body,
            "closed_by": dict(self._users[issue.closed_by]) if issue.closed_by else None,
            "reactions": self._rollup(f"{base}/reactions", ("issue", issue.id)),
            "timeline_url": f"{base}/timeline",
            "performed_via_github_app": None,
            "state_reason": issue.state_reason,
        }

    def _render_comment(self, r: RepoRecord, c: CommentRecord) -> dict[str, Any]:
        url = f"{self._api}/repos/{r.full_name}/issues/comments/{c.id}"
        return {
            "url": url,
            "html_url": f"{GITHUB_WEB}/{r.full_name}/issues/{c.number}#issuecomment-{c.id}",
            "issue_url": f"{self._api}/repos/{r.full_name}/issues/{c.number}",
            "id": c.id,
            "node_id": node_id("IssueComment", c.id),
            "user": dict(self._users[c.login]),
            "created_at": timestamp(c.created_at),
            "updated_at": timestamp(c.updated_at),
            "author_association": self._association(r, c.login),
            "body": c.body,
            "reactions": self._rollup(f"{url}/reactions", ("comment", c.id)),
            "performed_via_github_app": None,
        }

    def _render_reaction(self, x: ReactionRecord) -> dict[str, Any]:
        return {
            "id": x.id,
            "node_id": node_id("Reaction", x.id),
            "user": dict(self._users[x.login]),
            "content": x.content,
            "created_at": timestamp(x.created_at),
        }

    def _render_repo(self, r: RepoRecord) -> dict[str, Any]:
        api = f"{self._api}/repos/{r.full_name}"
        web = f"{GITHUB_WEB}/{r.full_name}"
        open_issues = sum(1 for i in r.issues.values() if i.state == "open")
        ts = timestamp(r.created_at)
        return {
            "id": r.id,
            "node_id": node_id("Repository", r.id),
            "name": r.name,
            "full_name": r.full_name,
            "private": False,
            "owner": dict(self._users[r.owner]),
            "html_url": web,
            "description": None,
            "fork": False,
            "url": api,
            "forks_url": f"{api}/forks",
            "keys_url": f"{api}/keys{{/key_id}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "teams_url": f"{api}/teams",
            "hooks_url": f"{api}/hooks",
            "issue_events_url": f"{api}/issues/events{{/number}}",
            "events_url": f"{api}/events",
            "assignees_url": f"{api}/assignees{{/user}}",
            "branches_url": f"{api}/branches{{/branch}}",
            "tags_url": f"{api}/tags",
            "blobs_url": f"{api}/git/blobs{{/sha}}",
            "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "languages_url": f"{api}/languages",
            "stargazers_url": f"{api}/stargazers",
            "contributors_url": f"{api}/contributors",
            "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription",
            "commits_url": f"{api}/commits{{/sha}}",
            "git_commits_url": f"{api}/git/commits{{/sha}}",
            "comments_url": f"{api}/comments{{/number}}",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "merges_url": f"{api}/merges",
            "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{api}/downloads",
            "issues_url": f"{api}/issues{{/number}}",
            "pulls_url": f"{api}/pulls{{/number}}",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "labels_url": f"{api}/labels{{/name}}",
            "releases_url": f"{api}/releases{{/id}}",
            "deployments_url": f"{api}/deployments",
            "created_at": ts,
            "updated_at": ts,
            "pushed_at": ts,
            "git_url": f"git://github.com/{r.full_name}.git",
            "ssh_url": f"git@github.com:{r.full_name}.git",
            "clone_url": f"{web}.git",
            "svn_url": web,
            "homepage": None,
            "size": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": None,
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": True,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": open_issues,
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "public",
            "forks": 0,
            "open_issues": open_issues,
            "watchers": 0,
            "default_branch": "main",
            "custom_properties": {},
        }

    def _bucket(self, key: str) -> RateBucket:
        bucket = self._buckets.get(key)
        now = int(self.clock().timestamp())
        if bucket is None or bucket.reset <= now:
            limit = 60 if key == "anonymous" else self.rate_limit
            bucket = RateBucket(limit=limit, remaining=limit, reset=now + 3600)
            self._buckets[key] = bucket
        return bucket

    # ------------------------------------------------------------------------------------ request core
    def _process(
        self,
        method: str,
        target: str,
        raw: bytes,
        *,
        authorization: str | None = None,
        login: str | None = None,
        if_none_match: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one request; shared by the HTTP handler and ``act`` so both behave identically."""
        faults = getattr(self, "write_faults", None)
        if faults is not None and faults.pending:
            app_api.commit_due(self)  # late commits land before anything that could observe them
        split = urlsplit(target)
        # Matched percent-encoded, as GitHub does: a label named "a/b" arrives as a%2Fb and stays one segment.
        path = split.path if split.path.startswith("/") else "/" + split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        writes: list[WriteEvent] = []
        with self._lock:
            self._request_seq += 1
            request_id = f"FAKE:{self._request_seq:04X}:{self._request_seq * 7919:06X}"
            headers: dict[str, str] = {"x-github-request-id": request_id, "x-github-api-version-selected": "2022-11-28"}
            try:
                body_json: JSON = json.loads(raw) if raw.strip() else None
            except ValueError:
                body_json = raw.decode(errors="replace")
                bad_json = True
            else:
                bad_json = False
            status, payload, login = self._answer(
                method, path, query, raw, bad_json, authorization, login, headers, writes, request_id
            )
            if isinstance(payload, RawBody):
                body = payload.data
                headers["content-type"] = payload.content_type
            else:
                body = b"" if payload is None else json.dumps(payload).encode()
            if body and status == 200 and method == "GET":
                etag = 'W/"' + hashlib.sha256(body).hexdigest() + '"'
                headers["etag"] = etag
                if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
                    status, body = 304, b""
                    bucket_key = None if login is None else headers.get("_bucket")
                    if bucket_key:  # conditional hits are free on GitHub
                        b = self._bucket(bucket_key)
                        b.remaining = min(b.limit, b.remaining + 1)
                        self._rate_headers(b, headers)
            headers.pop("_bucket", None)
            self._calls.append(RecordedCall(method, path, query, body_json, login, status))
            for observe in list(self.on_request):  # e.g. tools.fakes.github.writes_log (the "writes" lines)
                observe(method, target, raw, login, status)
        for write in writes:
            for hook in list(self.on_write):
                try:
                    hook(write)
                except Exception as exc:  # a broken hook must fail the test, not the HTTP exchange
                    logger.exception("on_write hook failed for %s", write.kind)
                    with self._lock:
                        self.hook_errors.append(exc)
        return status, headers, body

    def _rate_headers(self, b: RateBucket, headers: dict[str, str]) -> None:
        headers.update(
            {
                "x-ratelimit-limit": str(b.limit),
                "x-ratelimit-remaining": str(max(b.remaining, 0)),
                "x-ratelimit-reset": str(b.reset),
                "x-ratelimit-used": str(b.limit - max(b.remaining, 0)),
                "x-ratelimit-resource": "core",
            }
        )

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        raw: bytes,
        bad_json: bool,
        authorization: str | None,
        login: str | None,
        headers: dict[str, str],
        writes: list[WriteEvent],
        request_id: str,
    ) -> tuple[int, JSON, str | None]:
        # 1. authentication
        if login is not None:
            if login not in self._users:
                raise KeyError(f"unknown user {login}")
            bucket_key = f"act:{login}"
        else:
            token = None
            if authorization:
                scheme, _, value = authorization.partition(" ")
                if scheme.lower() in ("token", "bearer") and value.strip():
                    token = value.strip()
            login = self._tokens.get(token) if token else None
            if login is None:
                self._rate_headers(self._bucket("anonymous"), headers)
                return 401, error_body(401, "Bad credentials"), None
            bucket_key = token  # type: ignore[assignment]
        # 2. primary rate limit, per token
        bucket = self._bucket(bucket_key)
        headers["_bucket"] = bucket_key
        if bucket.remaining <= 0:
            bucket.remaining = 0
            self._rate_headers(bucket, headers)
            uid = self._users[login]["id"]
            return 403, error_body(403, f"API rate limit exceeded for user ID {uid}.", PRIMARY_LIMIT_DOCS), login
        bucket.remaining -= 1
        self._rate_headers(bucket, headers)
        # 3. injected failures
        for rule in self._rules:
            if rule.times > 0 and (rule.method in (None, method)) and rule.pattern.search(path):
                rule.times -= 1
                self._rules = [r for r in self._rules if r.times > 0]
                headers.update(rule.headers)
                body = rule.body
                if isinstance(body, dict) and isinstance(body.get("message"), str):
                    body = {**body, "message": body["message"].replace("{request_id}", request_id)}
                return rule.status, body, login
        late = app_api.write_faults(self).take_late(method, path) if method in WRITE_METHODS else None
        if late is not None:  # answered now, stored later (app_api.commit_due)
            app_api.defer(self, method, path + (f"?{urlencode(query)}" if query else ""), raw, login, late[0])
            return late[1], error_body(late[1], HTTPStatus(late[1]).phrase), login
        # 4. routing
        route = None
        allowed = False
        for m, pattern, handler, doc in _ROUTES:
            match = pattern.fullmatch(path)
            if match:
                allowed = True
                if m == method:
                    route = (match, handler, doc)
                    break
        if route is None:
            why = "method not implemented for this route" if allowed else "route not implemented"
            self._unexpected.append(f"{method} {path}{'?' + urlencode(query) if query else ''}: {why}")
            return 404, error_body(404, "Not Found"), login
        match, handler, doc = route
        if bad_json:
            return 400, error_body(400, "Problems parsing JSON", doc), login
        body_json = json.loads(raw) if raw.strip() else None
        bare_list_ok = isinstance(body_json, list) and handler is issues_api.add_labels
        if body_json is not None and not isinstance(body_json, dict) and not bare_list_ok:
            return (
                422,
                error_body(
                    422, f"Invalid request.\n\nFor 'links/0/schema', {json.dumps(body_json)} is not an object.", doc
                ),
                login,
            )
        ctx = RequestContext(
            method,
            path,
            {k: unquote(v) for k, v in match.groupdict().items()},
            query,
            body_json if body_json is not None else {},
            login,
            doc,
            writes,
            request_id=request_id,
        )
        try:
            scoped = "owner" in ctx.params  # /search/* and /app/* routes are not under a repository
            if scoped and self._repos.get(f"{ctx.params['owner']}/{ctx.params['repo']}") is None:
                raise HttpError(404, error_body(404, "Not Found", doc))
            gone = issue_lists_api.issues_gone(self, method, path, doc)
            if gone is not None:
                raise gone
            status, payload = handler(self, ctx)
        except HttpError as exc:
            headers.update(exc.headers)
            return exc.status, exc.body, login
        headers.update(ctx.headers)
        failed_after = app_api.write_faults(self).take_after(method, path) if method in WRITE_METHODS else None
        if failed_after is not None:  # stored, but the client is told otherwise
            return failed_after, error_body(failed_after, HTTPStatus(failed_after).phrase), login
        return status, payload, login


_ROUTES = (issues_api.ROUTES + issue_lists_api.ROUTES + repos_api.ROUTES + app_api.ROUTES + pulls_api.ROUTES
           + git_api.ROUTES + actions_api.ROUTES)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # keep-alive connections park handler threads on a read; stop() must not wait for clients to hang up
    block_on_close = False
    fake: FakeGitHub


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GitHub.com"
    sys_version = ""

    def _serve(self) -> None:
        fake = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, headers, body = fake._process(
            self.command,
            self.path,
            raw,
            authorization=self.headers.get("Authorization"),
            if_none_match=self.headers.get("If-None-Match"),
        )
        self.send_response(status)
        if status not in (204, 304) and "content-type" not in headers:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in headers.items():
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status not in (204, 304) and self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake github: " + format, *args)


