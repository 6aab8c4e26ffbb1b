"""The fake GitHub's pull request routes: get, list files (with ``patch``), create and list reviews.

Built from GitHub's REST description (github/rest-api-description, ``descriptions/api.github.com``), operation
ids ``pulls/get``, ``pulls/list-files``, ``pulls/create-review``, ``pulls/list-reviews`` and
``repos/compare-commits`` (three-dot, against the merge base; what a re-review reads to see only the new commits);
shapes as githubkit models them (``PullRequest``, ``DiffEntry``, ``PullRequestReview``, ``CommitComparison``).
A pull request is also an issue (same number space, issue comments work on it), as on GitHub. Its files are its
head branch's snapshot against its base branch's (:mod:`.diffs`); the branches live in :mod:`.git_api`'s store,
so a push (a ref moved through the Git Data routes, or :func:`add_pull` again) moves the PR's head SHA. Request
fields the fake does not implement (``position``, ``start_line``, ``subject_type``…) are refused and recorded as
unexpected, like every route of the fake.

Refusals of ``pulls/create-review`` (the whole review is refused, nothing is stored — GitHub's reviews are all or
nothing):

==================================================  ======  ==================================================
request                                             status  body
==================================================  ======  ==================================================
unknown pull request                                404     Not Found
a comment whose ``line``/``side`` is outside every  422     ``Unprocessable Entity``, errors: ["Pull request
hunk of its file                                            review thread line must be part of the diff"]
                                                            [parkerbxyz/suggest-changes #64 quotes GitHub's
                                                            body; QwenLM/qwen-code #6711 names the field
                                                            ``pull_request_review_thread.line``]
a comment on a path the PR does not change          422     errors: ["Pull request review thread line must
                                                            be part of the diff and Pull request review
                                                            thread diff hunk can't be blank"] [The-PR-Agent/
                                                            pr-agent #592]
a comment without ``path``/``body``/``line``        422     Validation Failed [REST reference: path and body
                                                            required; ``line`` when ``position`` is absent]
``side`` not LEFT/RIGHT; ``event`` unknown          422     Validation Failed [REST reference enums]
``commit_id`` not a commit of the PR's head line    422     errors: ["Commit id … is not part of the pull
                                                            request"] [modelled]
APPROVE / REQUEST_CHANGES on one's own PR           422     errors: ["Review Can not approve your own pull
                                                            request"] / "…request changes on…" [modelled]
REQUEST_CHANGES / COMMENT without ``body``          422     errors: ["Review Body can't be blank"] [REST
                                                            reference: "Required when using REQUEST_CHANGES
                                                            or COMMENT"]
a body or comment body over 65,536 characters       422     Validation Failed, "body is too long" [as issues]
==================================================  ======  ==================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from weakref import WeakKeyDictionary

from tools.fakes.github import git_api, repos_api
from tools.fakes.github.diffs import FileDiff, diff_trees
from tools.fakes.github.issues_api import reject_unknown_fields
from tools.fakes.github.records import (
    JSON,
    MAX_BODY,
    OWNER_REPO,
    Handler,
    HttpError,
    RequestContext,
    WriteEvent,
    error_body,
    node_id,
    timestamp,
)

if TYPE_CHECKING:
    from tools.fakes.github.fake import FakeGitHub

_D = "https://docs.github.com/rest/pulls"
_LINE_NOT_IN_DIFF = "Pull request review thread line must be part of the diff"
_HUNK_BLANK = "Pull request review thread diff hunk can't be blank"
_EVENTS = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}


@dataclass
class ReviewRecord:
    id: int
    login: str
    body: str
    state: str
    commit_id: str
    submitted_at: datetime
    comments: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PullRecord:
    number: int
    title: str
    head: str
    base: str
    login: str
    draft: bool
    created_at: datetime
    updated_at: datetime
    state: Literal["open", "closed"] = "open"
    merged: bool = False
    reviews: list[ReviewRecord] = field(default_factory=list)


#: fake → repo (lower-case) → number → pull request
PULLS: WeakKeyDictionary[Any, dict[str, dict[int, PullRecord]]] = WeakKeyDictionary()


def pulls(fake: FakeGitHub, repo: str) -> dict[int, PullRecord]:
    return PULLS.setdefault(fake, {}).setdefault(repo.lower(), {})


def add_pull(fake: FakeGitHub, repo: str, number: int, *, head: str, base: str = repos_api.DEFAULT_BRANCH,
             files: dict[str, str | None], draft: bool = False, title: str | None = None,
             login: str | None = None) -> dict[str, Any]:
    """Seed (or push to) pull request ``number``: commit ``files`` (path → text, None deletes) on ``head`` — a new
    branch from ``base`` the first time — and (re)open the PR. A later call for the same number is a push: the
    head SHA moves. Seeding records no call and fires no hook (setup, like ``add_issue``)."""
    with fake._lock:
        r = fake._repo(repo)
        existing = pulls(fake, repo).get(number)
        login = login or (existing.login if existing else r.owner)
        fake._ensure_user(login, "User")
        if existing is None:
            if number in r.issues:
                raise ValueError(f"#{number} is already an issue of {repo}")
            if number < r.next_number:
                raise ValueError(f"pull number {number} is below the next number {r.next_number}")
            issue = fake._new_issue(r, title or f"Pull request {number}", None, login, number)
            now = fake.clock()
            existing = PullRecord(number, issue.title, head, base, login, draft, now, now)
            pulls(fake, repo)[number] = existing
        git_api.commit_files(fake, repo, head, files, f"update {head}", login, base=base)
        existing.draft = draft
        existing.updated_at = fake.clock()
        return render_pull(fake, repo, existing)


def head_sha(fake: FakeGitHub, repo: str, pr: PullRecord) -> str:
    sha = git_api.branch_head(fake, repo, pr.head)
    if sha is None:
        raise HttpError(404, error_body(404, "Not Found"))
    return sha


def _text(files: dict[str, bytes]) -> dict[str, str]:
    return {path: data.decode("utf-8", errors="replace") for path, data in files.items()}


def file_diffs(fake: FakeGitHub, repo: str, pr: PullRecord) -> list[FileDiff]:
    s = git_api.store(fake)
    base = git_api.branch_head(fake, repo, pr.base)
    base_files = git_api.snapshot(s, base) if base else {}
    return diff_trees(_text(base_files), _text(git_api.snapshot(s, head_sha(fake, repo, pr))))


def render_pull(fake: FakeGitHub, repo: str, pr: PullRecord) -> dict[str, Any]:
    r = fake._repo(repo)
    rendered_repo = fake._render_repo(r)
    api = f"{fake._api}/repos/{repo}"
    web = f"https://github.com/{repo}/pull/{pr.number}"
    user = dict(fake._users[pr.login])
    diffs = file_diffs(fake, repo, pr)
    base_sha = git_api.branch_head(fake, repo, pr.base) or ""
    links = {"self": f"{api}/pulls/{pr.number}", "html": web, "issue": f"{api}/issues/{pr.number}",
             "comments": f"{api}/issues/{pr.number}/comments", "review_comments": f"{api}/pulls/{pr.number}/comments",
             "review_comment": f"{api}/pulls/comments{{/number}}", "commits": f"{api}/pulls/{pr.number}/commits",
             "statuses": f"{api}/statuses/{head_sha(fake, repo, pr)}"}
    return {
        "url": links["self"], "id": 5_000_000 + pr.number, "node_id": node_id("PullRequest", pr.number),
        "html_url": web, "diff_url": f"{web}.diff", "patch_url": f"{web}.patch", "issue_url": links["issue"],
        "commits_url": links["commits"], "review_comments_url": links["review_comments"],
        "review_comment_url": links["review_comment"], "comments_url": links["comments"],
        "statuses_url": links["statuses"], "number": pr.number, "state": pr.state, "locked": False,
        "title": pr.title, "user": user, "body": None, "labels": [], "milestone": None,
        "created_at": timestamp(pr.created_at), "updated_at": timestamp(pr.updated_at), "closed_at": None,
        "merged_at": None, "merge_commit_sha": None, "draft": pr.draft,
        "head": {"label": f"{r.owner}:{pr.head}", "ref": pr.head, "sha": head_sha(fake, repo, pr),
                 "user": dict(fake._users[r.owner]), "repo": rendered_repo},
        "base": {"label": f"{r.owner}:{pr.base}", "ref": pr.base, "sha": base_sha,
                 "user": dict(fake._users[r.owner]), "repo": rendered_repo},
        "_links": {k: {"href": v} for k, v in links.items()},
        "author_association": fake._association(r, pr.login), "auto_merge": None, "merged": pr.merged,
        "mergeable": True, "mergeable_state": "clean", "merged_by": None, "comments": 0,
        "review_comments": sum(len(x.comments) for x in pr.reviews), "maintainer_can_modify": False,
        "commits": 1, "additions": sum(d.additions for d in diffs), "deletions": sum(d.deletions for d in diffs),
        "changed_files": len(diffs),
    }


def _pull(fake: FakeGitHub, ctx: RequestContext) -> tuple[str, PullRecord]:
    repo = f"{ctx.params['owner']}/{ctx.params['repo']}"
    pr = pulls(fake, repo).get(int(ctx.params["number"]))
    if pr is None:
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    return repo, pr


def get_pull(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``pulls/get``."""
    repo, pr = _pull(fake, ctx)
    return 200, render_pull(fake, repo, pr)


def list_files(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``pulls/list-files``: diff entries with ``patch`` (``per_page`` ≤ 100, ``page``)."""
    repo, pr = _pull(fake, ctx)
    per_page = max(1, min(100, int(ctx.query.get("per_page") or 30)))
    page = max(1, int(ctx.query.get("page") or 1))
    sha = head_sha(fake, repo, pr)
    out = []
    for d in file_diffs(fake, repo, pr)[(page - 1) * per_page: page * per_page]:
        blob = f"https://github.com/{repo}/blob/{sha}/{d.filename}"
        out.append({"sha": sha, "filename": d.filename, "status": d.status, "additions": d.additions,
                    "deletions": d.deletions, "changes": d.changes, "blob_url": blob,
                    "raw_url": f"https://github.com/{repo}/raw/{sha}/{d.filename}",
                    "contents_url": f"{fake._api}/repos/{repo}/contents/{d.filename}?ref={sha}", "patch": d.patch})
    return 200, out


def _invalid(ctx: RequestContext, field_name: str, code: str = "invalid", message: str | None = None) -> HttpError:
    err: dict[str, Any] = {"resource": "PullRequestReview", "field": field_name, "code": code}
    if message:
        err["message"] = message
    return HttpError(422, error_body(422, "Validation Failed", ctx.doc, errors=[err]))


def _unprocessable(ctx: RequestContext, *errors: str) -> HttpError:
    return HttpError(422, error_body(422, "Unprocessable Entity", ctx.doc, errors=list(errors)))


def render_review(fake: FakeGitHub, repo: str, pr: PullRecord, x: ReviewRecord) -> dict[str, Any]:
    r = fake._repo(repo)
    web = f"https://github.com/{repo}/pull/{pr.number}"
    return {"id": x.id, "node_id": node_id("PullRequestReview", x.id), "user": dict(fake._users[x.login]),
            "body": x.body, "state": x.state, "html_url": f"{web}#pullrequestreview-{x.id}",
            "pull_request_url": f"{fake._api}/repos/{repo}/pulls/{pr.number}",
            "_links": {"html": {"href": f"{web}#pullrequestreview-{x.id}"},
                       "pull_request": {"href": f"{fake._api}/repos/{repo}/pulls/{pr.number}"}},
            "submitted_at": timestamp(x.submitted_at), "commit_id": x.commit_id,
            "author_association": fake._association(r, x.login)}


def create_review(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``pulls/create-review``: ``{commit_id, body, event, comments: [{path, line, side, body}]}``; anchors are
    checked against the diff *at* ``commit_id`` (default: the head). All or nothing."""
    repo, pr = _pull(fake, ctx)
    body = ctx.body
    reject_unknown_fields(fake, ctx, {"commit_id", "body", "event", "comments"})
    s = git_api.store(fake)
    head = head_sha(fake, repo, pr)
    commit_id = body.get("commit_id") or head
    if not isinstance(commit_id, str) or commit_id not in s.commits or not git_api.is_ancestor(s, commit_id, head):
        raise _unprocessable(ctx, f"Commit id {commit_id} is not part of the pull request")
    event = body.get("event")
    if event is not None and event not in _EVENTS:
        raise _invalid(ctx, "event")
    text = body.get("body")
    if text is not None and not isinstance(text, str):
        raise _invalid(ctx, "body")
    if text is not None and len(text) > MAX_BODY:
        raise _invalid(ctx, "body", "custom", f"body is too long (maximum is {MAX_BODY} characters)")
    if event in ("REQUEST_CHANGES", "COMMENT") and not text:
        raise _unprocessable(ctx, "Review Body can't be blank")
    if event in ("APPROVE", "REQUEST_CHANGES") and ctx.login == pr.login:
        verb = "approve" if event == "APPROVE" else "request changes on"
        raise _unprocessable(ctx, f"Review Can not {verb} your own pull request")
    # The diff the anchors refer to: base branch against the commit the review is for.
    base = git_api.branch_head(fake, repo, pr.base)
    diffs = {d.filename: d for d in diff_trees(_text(git_api.snapshot(s, base) if base else {}),
                                               _text(git_api.snapshot(s, commit_id)))}
    comments = body.get("comments") or []
    if not isinstance(comments, list):
        raise _invalid(ctx, "comments")
    stored = []
    for c in comments:
        if not isinstance(c, dict) or not isinstance(c.get("path"), str) or not isinstance(c.get("body"), str):
            raise _invalid(ctx, "comments", "missing_field")
        extra = sorted(set(c) - {"path", "line", "side", "body"})
        if extra:
            fake._unexpected.append(f"{ctx.method} {ctx.path}: comment fields not implemented by the fake: {extra}")
            raise HttpError(422, error_body(422, f"Fake GitHub does not implement field(s) {extra}", ctx.doc))
        if len(c["body"]) > MAX_BODY:
            raise _invalid(ctx, "comments", "custom", f"body is too long (maximum is {MAX_BODY} characters)")
        side = c.get("side", "RIGHT")
        line = c.get("line")
        if side not in ("LEFT", "RIGHT"):
            raise _invalid(ctx, "side")
        if not isinstance(line, int) or isinstance(line, bool):
            raise _invalid(ctx, "line", "missing_field")
        diff = diffs.get(c["path"])
        if diff is None:
            raise _unprocessable(ctx, f"{_LINE_NOT_IN_DIFF} and {_HUNK_BLANK}")
        if (side, line) not in diff.commentable:
            raise _unprocessable(ctx, _LINE_NOT_IN_DIFF)
        stored.append({"path": c["path"], "line": line, "side": side, "body": c["body"]})
    state = _EVENTS.get(event or "", "PENDING")
    review = ReviewRecord(fake._new_id(), ctx.login, text or "", state, commit_id, fake.clock(), stored)
    pr.reviews.append(review)
    rendered = render_review(fake, repo, pr, review)
    ctx.writes.append(WriteEvent("review", fake._repo(repo).full_name, pr.number, review.id,
                                 dict(fake._users[ctx.login]), rendered, render_pull(fake, repo, pr),
                                 request_id=ctx.request_id))
    return 200, rendered


def list_reviews(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``pulls/list-reviews``: oldest first."""
    repo, pr = _pull(fake, ctx)
    return 200, [render_review(fake, repo, pr, x) for x in pr.reviews]


def _resolve(fake: FakeGitHub, repo: str, name: str) -> str | None:
    if name in git_api.store(fake).commits:
        return name
    return git_api.branch_head(fake, repo, name)


def _ancestors(s: git_api.GitStore, sha: str) -> list[str]:
    """``sha`` and its ancestors, nearest first (breadth-first)."""
    out, todo, seen = [], [sha], set()
    while todo:
        cur = todo.pop(0)
        if cur in seen or cur not in s.commits:
            continue
        seen.add(cur)
        out.append(cur)
        todo.extend(s.commits[cur].parents)
    return out


def _render_commit_item(fake: FakeGitHub, repo: str, sha: str) -> dict[str, Any]:
    c = git_api.store(fake).commits[sha]
    api = f"{fake._api}/repos/{repo}"
    return {"url": f"{api}/commits/{sha}", "sha": sha, "node_id": f"C_{sha[:20]}",
            "html_url": f"https://github.com/{repo}/commit/{sha}", "comments_url": f"{api}/commits/{sha}/comments",
            "commit": {"url": f"{api}/git/commits/{sha}", "author": c.author, "committer": c.committer,
                       "message": c.message, "comment_count": 0,
                       "tree": {"sha": c.tree, "url": f"{api}/git/trees/{c.tree}"}},
            "author": None, "committer": None,
            "parents": [{"sha": p, "url": f"{api}/commits/{p}"} for p in c.parents]}


def compare(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``repos/compare-commits``: ``BASE...HEAD`` (branches or SHAs) against their merge base, as GitHub's
    three-dot compare: ``status``, ``ahead_by``/``behind_by``, the commits and the files with their ``patch``."""
    repo = f"{ctx.params['owner']}/{ctx.params['repo']}"
    base_name, sep, head_name = ctx.params["basehead"].partition("...")
    s = git_api.store(fake)
    base = _resolve(fake, repo, base_name) if sep else None
    head = _resolve(fake, repo, head_name) if sep else None
    if base is None or head is None:
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    head_line = _ancestors(s, head)
    base_line = _ancestors(s, base)
    merge_base = next((sha for sha in head_line if sha in set(base_line)), None)
    if merge_base is None:
        raise HttpError(404, error_body(404, f"No common ancestor between {base_name} and {head_name}.", ctx.doc))
    ahead = [sha for sha in head_line if sha not in set(_ancestors(s, merge_base))]
    behind = [sha for sha in base_line if sha not in set(_ancestors(s, merge_base))]
    status = ("identical" if not ahead and not behind else "ahead" if not behind else "behind" if not ahead
              else "diverged")
    files = diff_trees(_text(git_api.snapshot(s, merge_base)), _text(git_api.snapshot(s, head)))
    web = f"https://github.com/{repo}/compare/{base_name}...{head_name}"
    return 200, {
        "url": f"{fake._api}/repos/{repo}/compare/{base_name}...{head_name}", "html_url": web,
        "permalink_url": web, "diff_url": f"{web}.diff", "patch_url": f"{web}.patch",
        "base_commit": _render_commit_item(fake, repo, base),
        "merge_base_commit": _render_commit_item(fake, repo, merge_base), "status": status,
        "ahead_by": len(ahead), "behind_by": len(behind), "total_commits": len(ahead),
        "commits": [_render_commit_item(fake, repo, sha) for sha in reversed(ahead)],
        "files": [{"sha": head, "filename": d.filename, "status": d.status, "additions": d.additions,
                   "deletions": d.deletions, "changes": d.changes, "blob_url": None, "raw_url": None,
                   "contents_url": f"{fake._api}/repos/{repo}/contents/{d.filename}?ref={head}", "patch": d.patch}
                  for d in files]}


def reviews(fake: FakeGitHub, repo: str, number: int) -> list[ReviewRecord]:
    """The reviews stored on a PR (for tests)."""
    with fake._lock:
        return list(pulls(fake, repo)[number].reviews)


_N = r"/pulls/(?P<number>[0-9]+)"
ROUTE_SPECS: list[tuple[str, str, Handler, str]] = [
    ("GET", OWNER_REPO + _N, get_pull, f"{_D}/pulls#get-a-pull-request"),
    ("GET", OWNER_REPO + _N + r"/files", list_files, f"{_D}/pulls#list-pull-requests-files"),
    ("POST", OWNER_REPO + _N + r"/reviews", create_review, f"{_D}/reviews#create-a-review-for-a-pull-request"),
    ("GET", OWNER_REPO + _N + r"/reviews", list_reviews, f"{_D}/reviews#list-reviews-for-a-pull-request"),
    ("GET", OWNER_REPO + r"/compare/(?P<basehead>.+\.\.\..+)", compare,
     "https://docs.github.com/rest/commits/commits#compare-two-commits"),
]
ROUTES = [(m, re.compile(p), h, d) for m, p, h, d in ROUTE_SPECS]
