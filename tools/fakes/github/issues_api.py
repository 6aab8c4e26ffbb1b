"""The fake GitHub's REST routes for issues, comments, labels and reactions: one function per endpoint.

Each takes the fake and the parsed request; it validates the request the way GitHub does (unknown fields, text
limits, 404/410/422 bodies) and answers (status, JSON). ``ROUTES`` maps method and path to them.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlencode

from tools.fakes.github.records import (
    JSON,
    MAX_BODY,
    OWNER_REPO,
    REACTIONS,
    CommentRecord,
    Handler,
    HttpError,
    IssueRecord,
    ReactionRecord,
    RepoRecord,
    RequestContext,
    WriteEvent,
    WriteKind,
    error_body,
)

if TYPE_CHECKING:
    from tools.fakes.github.fake import FakeGitHub


def ctx_repo(fake: FakeGitHub, ctx: RequestContext) -> RepoRecord:
    return fake._repos[f"{ctx.params['owner']}/{ctx.params['repo']}"]


def ctx_issue(fake: FakeGitHub, ctx: RequestContext, r: RepoRecord) -> IssueRecord:
    issue = r.issues.get(int(ctx.params["number"]))
    if issue is None:
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    return issue


def ctx_comment(fake: FakeGitHub, ctx: RequestContext, r: RepoRecord) -> CommentRecord:
    c = fake._comments.get(int(ctx.params["comment_id"]))
    if c is None or c.repo != r.full_name:
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    return c


def reject_unknown_fields(fake: FakeGitHub, ctx: RequestContext, allowed: set[str]) -> None:
    extra = sorted(set(ctx.body) - allowed) if isinstance(ctx.body, dict) else []
    if extra:
        fake._unexpected.append(f"{ctx.method} {ctx.path}: fields not implemented by the fake: {extra}")
        raise HttpError(422, error_body(422, f"Fake GitHub does not implement field(s) {extra}", ctx.doc))


def validation(
    fake: FakeGitHub, ctx: RequestContext, resource: str, field_name: str, code: str, message: str | None = None
) -> NoReturn:
    err: dict[str, Any] = {"resource": resource, "code": code, "field": field_name}
    if message:
        err["message"] = message
    raise HttpError(422, error_body(422, "Validation Failed", ctx.doc, errors=[err]))


def check_text(
    fake: FakeGitHub, ctx: RequestContext, resource: str, name: str, value: Any, required: bool
) -> str | None:
    if value is None and not required:
        return None
    if value is not None and not isinstance(value, str):
        raise HttpError(
            422,
            error_body(
                422, f"Invalid request.\n\nFor 'properties/{name}', {json.dumps(value)} is not a string.", ctx.doc
            ),
        )
    if required and not value:
        validation(fake, ctx, resource, name, "missing_field")
    if value is not None and len(value) > MAX_BODY:
        validation(fake, ctx, resource, name, "custom", f"{name} is too long (maximum is {MAX_BODY} characters)")
    return value


def write(
    fake: FakeGitHub,
    ctx: RequestContext,
    r: RepoRecord,
    issue: IssueRecord,
    kind: WriteKind,
    resource: dict[str, Any],
    resource_id: int,
    **extra: Any,
) -> None:
    ctx.writes.append(
        WriteEvent(
            kind=kind,
            repo=r.full_name,
            number=issue.number,
            resource_id=resource_id,
            actor=dict(fake._users[ctx.login]),
            resource=resource,
            issue=fake._render_issue(r, issue),
            request_id=ctx.request_id,
            **extra,
        )
    )


def get_issue(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    r = ctx_repo(fake, ctx)
    return 200, fake._render_issue(r, ctx_issue(fake, ctx, r))


def create_issue(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    r = ctx_repo(fake, ctx)
    reject_unknown_fields(fake, ctx, {"title", "body", "labels"})
    if "title" not in ctx.body or ctx.body["title"] is None:
        raise HttpError(422, error_body(422, 'Invalid request.\n\n"title" wasn\'t supplied.', ctx.doc))
    title = check_text(fake, ctx, "Issue", "title", ctx.body["title"], required=True)
    body = check_text(fake, ctx, "Issue", "body", ctx.body.get("body"), required=False)
    labels = label_names(fake, ctx, ctx.body.get("labels", []))
    issue = fake._new_issue(r, title or "", body, ctx.login, None)
    new_labels = [lab for lab in (fake._apply_label(r, issue, n) for n in labels) if lab]
    rendered = fake._render_issue(r, issue)
    write(fake, ctx, r, issue, "issue", rendered, issue.id, subject="issue")
    for label in new_labels:
        write(fake, ctx, r, issue, "label", dict(label), label["id"], label=dict(label), subject="issue")
    return 201, rendered


def update_issue(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    r = ctx_repo(fake, ctx)
    issue = ctx_issue(fake, ctx, r)
    reject_unknown_fields(fake, ctx, {"title", "body", "state", "state_reason", "labels"})
    changes: dict[str, Any] = {}
    if "title" in ctx.body:
        title = check_text(fake, ctx, "Issue", "title", ctx.body["title"], required=True)
        if title != issue.title:
            changes["title"] = {"from": issue.title}
    if "body" in ctx.body:
        body = check_text(fake, ctx, "Issue", "body", ctx.body["body"], required=False)
        if body != issue.body:
            changes["body"] = {"from": issue.body}
    state = ctx.body.get("state", issue.state)
    if state not in ("open", "closed"):
        validation(fake, ctx, "Issue", "state", "invalid")
    reason = ctx.body.get("state_reason")
    if reason not in (None, "completed", "not_planned", "duplicate", "reopened"):
        validation(fake, ctx, "Issue", "state_reason", "invalid")
    labels = label_names(fake, ctx, ctx.body["labels"]) if "labels" in ctx.body else None
    now = fake.clock()
    if "title" in changes:
        issue.title = ctx.body["title"]
    if "body" in changes:
        issue.body = ctx.body["body"]
    state_changed = state != issue.state
    if state_changed:
        issue.state = state
        if state == "closed":
            issue.closed_at, issue.closed_by = now, ctx.login
            issue.state_reason = reason or "completed"
        else:
            issue.closed_at, issue.closed_by = None, None
            issue.state_reason = "reopened"
    elif reason is not None and state == "closed":
        issue.state_reason = reason
    added: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    if labels is not None:
        wanted = [fake._ensure_label(r, n)["name"].lower() for n in labels]
        removed = [dict(r.labels[k]) for k in issue.labels if k not in wanted]
        issue.labels = [k for k in issue.labels if k in wanted]
        added = [dict(lab) for lab in (fake._apply_label(r, issue, r.labels[k]["name"]) for k in wanted) if lab]
    if changes or state_changed or added or removed:
        issue.updated_at = now
    rendered = fake._render_issue(r, issue)
    if changes:
        write(fake, ctx, r, issue, "issue_edit", rendered, issue.id, changes=changes, subject="issue")
    if state_changed:
        write(fake, ctx, r, issue, "issue_state", rendered, issue.id, subject="issue")
    for label in removed:
        write(fake, ctx, r, issue, "unlabel", label, label["id"], label=label, subject="issue")
    for label in added:
        write(fake, ctx, r, issue, "label", label, label["id"], label=label, subject="issue")
    return 200, rendered


def list_comments(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    r = ctx_repo(fake, ctx)
    issue = ctx_issue(fake, ctx, r)
    try:
        per_page = min(max(int(ctx.query.get("per_page", "30")), 1), 100)
    except ValueError:
        per_page = 30
    try:
        page = max(int(ctx.query.get("page", "1")), 1)
    except ValueError:
        page = 1
    items = fake._issue_comments(r, issue.number)
    if "since" in ctx.query:
        try:
            since = datetime.fromisoformat(ctx.query["since"].replace("Z", "+00:00"))
        except ValueError:
            validation(fake, ctx, "IssueComment", "since", "invalid")
        items = [c for c in items if c.updated_at >= since]
    last = max((len(items) + per_page - 1) // per_page, 1)
    chunk = items[(page - 1) * per_page : page * per_page]
    base = f"{fake._api}/repos/{r.full_name}/issues/{issue.number}/comments"
    extra = {k: v for k, v in ctx.query.items() if k not in ("page", "per_page")}

    def link(p: int, rel: str) -> str:
        q = {**extra, "per_page": str(per_page), "page": str(p)}
        return f'<{base}?{urlencode(q)}>; rel="{rel}"'

    links = []
    if page > 1:
        links += [link(min(page - 1, last), "prev")]
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(1, "first")]
    if links:
        ctx.headers["link"] = ", ".join(links)
    return 200, [fake._render_comment(r, c) for c in chunk]


def create_comment(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    r = ctx_repo(fake, ctx)
    issue = ctx_issue(fake, ctx, r)
    reject_unknown_fields(fake, ctx, {"body"})
    body = check_text(fake, ctx, "IssueComment", "body", ctx.body.get("body"), required=True)
    now = fake.clock()
    c = CommentRecord(
        id=fake._new_id(),
        repo=r.full_name,
        number=issue.number,
        body=body or "",
        login=ctx.login,
        created_at=now,
        updated_at=now,
    )
    fake._comments[c.id] = c
    issue.updated_at = now
    rendered = fake._render_comment(r, c)
    write(fake, ctx, r, issue, "comment", rendered, c.id, subject="comment")
    return 201, rendered


def get_comment(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    r = ctx_repo(fake, ctx)
    return 200, fake._render_comment(r, ctx_comment(fake, ctx, r))


def update_comment(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    r = ctx_repo(fake, ctx)
    c = ctx_comment(fake, ctx, r)
    reject_unknown_fields(fake, ctx, {"body"})
    body = check_text(fake, ctx, "IssueComment", "body", ctx.body.get("body"), required=True)
    old = c.body
    c.body, c.updated_at = body or "", fake.clock()
    rendered = fake._render_comment(r, c)
    write(fake, 
        ctx,
        r,
        r.issues[c.number],
        "comment_edit",
        rendered,
        c.id,
        changes={"body": {"from": old}},
        subject="comment",
    )
    return 200, rendered


def delete_comment(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    r = ctx_repo(fake, ctx)
    c = ctx_comment(fake, ctx, r)
    rendered = fake._render_comment(r, c)
    del fake._comments[c.id]
    fake._reactions.pop(("comment", c.id), None)
    write(fake, ctx, r, r.issues[c.number], "comment_delete", rendered, c.id, subject="comment")
    return 204, None


def label_names(fake: FakeGitHub, ctx: RequestContext, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise HttpError(
            422,
            error_body(
                422, f"Invalid request.\n\nFor 'properties/labels', {json.dumps(value)} is not an array.", ctx.doc
            ),
        )
    names: list[str] = []
    for item in value:
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name.strip():
            validation(fake, ctx, "Label", "name", "invalid")
        names.append(name)
    return names


def list_labels(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    r = ctx_repo(fake, ctx)
    issue = ctx_issue(fake, ctx, r)
    return 200, [dict(r.labels[k]) for k in issue.labels]


def add_labels(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    r = ctx_repo(fake, ctx)
    issue = ctx_issue(fake, ctx, r)
    if isinstance(ctx.body, dict):
        reject_unknown_fields(fake, ctx, {"labels"})
        if "labels" not in ctx.body:
            raise HttpError(422, error_body(422, 'Invalid request.\n\n"labels" wasn\'t supplied.', ctx.doc))
        raw = ctx.body["labels"]
    else:
        raw = ctx.body
    names = label_names(fake, ctx, raw)
    added = [dict(lab) for lab in (fake._apply_label(r, issue, n) for n in names) if lab]
    if added:
        issue.updated_at = fake.clock()
    for label in added:
        write(fake, ctx, r, issue, "label", label, label["id"], label=label, subject="issue")
    return 200, [dict(r.labels[k]) for k in issue.labels]


def remove_label(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    r = ctx_repo(fake, ctx)
    issue = ctx_issue(fake, ctx, r)
    key = ctx.params["name"].lower()
    if key not in issue.labels:
        raise HttpError(404, error_body(404, "Label does not exist", ctx.doc))
    issue.labels.remove(key)
    issue.updated_at = fake.clock()
    label = dict(r.labels[key])
    write(fake, ctx, r, issue, "unlabel", label, label["id"], label=label, subject="issue")
    return 200, [dict(r.labels[k]) for k in issue.labels]


def react(
    fake: FakeGitHub, ctx: RequestContext, r: RepoRecord, issue: IssueRecord, key: tuple[str, int]
) -> tuple[int, JSON]:
    reject_unknown_fields(fake, ctx, {"content"})
    content = ctx.body.get("content")
    if not isinstance(content, str) or content not in REACTIONS:
        validation(fake, ctx, "Reaction", "content", "invalid" if content is not None else "missing_field")
    existing = next(
        (x for x in fake._reactions.get(key, []) if x.login == ctx.login and x.content == content), None
    )
    if existing is not None:
        return 200, fake._render_reaction(existing)
    x = ReactionRecord(id=fake._new_id(), login=ctx.login, content=content, created_at=fake.clock())
    fake._reactions.setdefault(key, []).append(x)
    rendered = fake._render_reaction(x)
    write(fake, ctx, r, issue, "reaction", rendered, x.id, subject=key[0])
    return 201, rendered


def react_comment(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    r = ctx_repo(fake, ctx)
    c = ctx_comment(fake, ctx, r)
    return react(fake, ctx, r, r.issues[c.number], ("comment", c.id))


def react_issue(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    r = ctx_repo(fake, ctx)
    issue = ctx_issue(fake, ctx, r)
    return react(fake, ctx, r, issue, ("issue", issue.id))


_D_ISSUES = "https://docs.github.com/rest/issues/issues"
_D_COMMENTS = "https://docs.github.com/rest/issues/comments"
_D_LABELS = "https://docs.github.com/rest/issues/labels"
_D_REACTIONS = "https://docs.github.com/rest/reactions/reactions"
ROUTE_SPECS: list[tuple[str, str, Handler, str]] = [
    ("GET", r"/issues/(?P<number>\d+)", get_issue, f"{_D_ISSUES}#get-an-issue"),
    ("PATCH", r"/issues/(?P<number>\d+)", update_issue, f"{_D_ISSUES}#update-an-issue"),
    ("POST", r"/issues", create_issue, f"{_D_ISSUES}#create-an-issue"),
    ("GET", r"/issues/(?P<number>\d+)/comments", list_comments, f"{_D_COMMENTS}#list-issue-comments"),
    (
        "POST",
        r"/issues/(?P<number>\d+)/comments",
        create_comment,
        f"{_D_COMMENTS}#create-an-issue-comment",
    ),
    ("GET", r"/issues/comments/(?P<comment_id>\d+)", get_comment, f"{_D_COMMENTS}#get-an-issue-comment"),
    (
        "PATCH",
        r"/issues/comments/(?P<comment_id>\d+)",
        update_comment,
        f"{_D_COMMENTS}#update-an-issue-comment",
    ),
    (
        "DELETE",
        r"/issues/comments/(?P<comment_id>\d+)",
        delete_comment,
        f"{_D_COMMENTS}#delete-an-issue-comment",
    ),
    ("GET", r"/issues/(?P<number>\d+)/labels", list_labels, f"{_D_LABELS}#list-labels-for-an-issue"),
    ("POST", r"/issues/(?P<number>\d+)/labels", add_labels, f"{_D_LABELS}#add-labels-to-an-issue"),
    (
        "DELETE",
        r"/issues/(?P<number>\d+)/labels/(?P<name>[^/]+)",
        remove_label,
        f"{_D_LABELS}#remove-a-label-from-an-issue",
    ),
    (
        "POST",
        r"/issues/comments/(?P<comment_id>\d+)/reactions",
        react_comment,
        f"{_D_REACTIONS}#create-reaction-for-an-issue-comment",
    ),
    (
        "POST",
        r"/issues/(?P<number>\d+)/reactions",
        react_issue,
        f"{_D_REACTIONS}#create-reaction-for-an-issue",
    ),
]
ROUTES = [(m, re.compile(OWNER_REPO + p), h, d) for m, p, h, d in ROUTE_SPECS]
