"""The fake GitHub's issue routes beyond create/comment/label: listing a repository's issues, and repositories
whose issues are disabled.

Modelled on GitHub's OpenAPI description (github/rest-api-description, as githubkit generates it in
``githubkit_schemas/v2026_03_10/rest/``). Refusals, per operation id:

- ``issues/list-for-repo`` (``GET /repos/{o}/{r}/issues``): 200 list with ``Link`` paging. Refuses a bad
  ``state``/``sort``/``direction`` with 422 (documented: 422 ValidationError), an unknown repository with 404,
  and a query parameter the fake does not implement with 422 *and* an ``unexpected`` entry.
- ``issues/create``, ``issues/create-comment``, ``issues/add-labels`` (routes in ``issues_api``): 410
  ``Issues are disabled for this repo`` when the repository has issues disabled (all three document a 410
  BasicError). Seeded with :func:`disable_issues`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from weakref import WeakKeyDictionary

from tools.fakes.github.records import JSON, OWNER_REPO, Handler, HttpError, RequestContext, error_body

if TYPE_CHECKING:
    from tools.fakes.github.fake import FakeGitHub

_D_ISSUES = "https://docs.github.com/rest/issues/issues"
#: fake → repositories (lower-case full names) whose issues are disabled
ISSUES_DISABLED: WeakKeyDictionary[Any, set[str]] = WeakKeyDictionary()


def disable_issues(fake: FakeGitHub, repo: str, disabled: bool = True) -> None:
    """Turn a repository's issues off (GitHub then answers 410 to issue writes) or on again."""
    names = ISSUES_DISABLED.setdefault(fake, set())
    (names.add if disabled else names.discard)(repo.lower())


_ISSUE_WRITE = re.compile(OWNER_REPO + r"/issues(?:/\d+/(?:comments|labels))?")


def issues_gone(fake: FakeGitHub, method: str, path: str, doc: str) -> HttpError | None:
    """The 410 GitHub answers to an issue write in a repository whose issues are disabled, else None."""
    match = _ISSUE_WRITE.fullmatch(path)
    if method != "POST" or match is None:
        return None
    if f"{match['owner']}/{match['repo']}".lower() not in ISSUES_DISABLED.get(fake, set()):
        return None
    return HttpError(410, error_body(410, "Issues are disabled for this repo", doc))


_LIST_PARAMS = {"creator", "state", "sort", "direction", "per_page", "page"}


def list_repo_issues(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``issues/list-for-repo``: filter by creator and state, sorted by creation or update time, paged."""
    unknown = sorted(set(ctx.query) - _LIST_PARAMS)
    if unknown:
        fake._unexpected.append(f"{ctx.method} {ctx.path}: query parameters not implemented: {unknown}")
        raise HttpError(422, error_body(422, f"Fake GitHub does not implement parameter(s) {unknown}", ctx.doc))
    state = ctx.query.get("state", "open")
    sort = ctx.query.get("sort", "created")
    direction = ctx.query.get("direction", "desc")
    for name, value, allowed in (("state", state, ("open", "closed", "all")), ("sort", sort, ("created", "updated")),
                                 ("direction", direction, ("asc", "desc"))):
        if value not in allowed:
            raise HttpError(422, error_body(422, "Validation Failed", ctx.doc, errors=[
                {"resource": "Issue", "field": name, "code": "invalid"}]))
    r = fake._repos[f"{ctx.params['owner']}/{ctx.params['repo']}"]
    issues = [i for i in r.issues.values() if state == "all" or i.state == state]
    if "creator" in ctx.query:
        issues = [i for i in issues if i.login.lower() == ctx.query["creator"].lower()]
    issues.sort(key=lambda i: (i.created_at if sort == "created" else i.updated_at, i.number),
                reverse=direction == "desc")
    try:
        per_page = min(max(int(ctx.query.get("per_page", "30")), 1), 100)
        page = max(int(ctx.query.get("page", "1")), 1)
    except ValueError:
        raise HttpError(422, error_body(422, "Validation Failed", ctx.doc)) from None
    last = max((len(issues) + per_page - 1) // per_page, 1)
    if page < last:
        query = {k: v for k, v in ctx.query.items() if k != "page"}
        base = f"{fake._api}/repos/{r.full_name}/issues"
        ctx.headers["link"] = (f'<{base}?{urlencode({**query, "page": str(page + 1)})}>; rel="next", '
                               f'<{base}?{urlencode({**query, "page": str(last)})}>; rel="last"')
    chunk = issues[(page - 1) * per_page: page * per_page]
    return 200, [fake._render_issue(r, i) for i in chunk]


ROUTE_SPECS: list[tuple[str, str, Handler, str]] = [
    ("GET", OWNER_REPO + r"/issues", list_repo_issues, f"{_D_ISSUES}#list-repository-issues"),
]
ROUTES = [(m, re.compile(p), h, d) for m, p, h, d in ROUTE_SPECS]
