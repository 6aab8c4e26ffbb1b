"""Planning a pull request review (pure): one review per head SHA, inline comments only on lines the push changed,
drafts skipped unless asked, GitHub's size limits kept.

The Code specialist proposes a summary and inline comments; :func:`plan_review` decides what the typed writer
sends to ``pulls/create-review`` so that GitHub never answers 422: a comment whose anchor is not a changed line of
this push is not sent inline — it moves into the summary under "Other notes" with its ``path:line`` (nothing the
model said is lost, nothing is refused). The plan's ``key`` (repo, number, head SHA) is the effect ledger's
idempotency key: a redelivered ``synchronize`` or a crash after the review was posted finds it there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.pulls.patches import Anchor, anchors, lines_changed_since

#: GitHub's limit on a review body and on each comment body (characters).
MAX_BODY = 65_536
#: Inline comments per review: more is noise (a product choice, not a GitHub limit).
MAX_INLINE = 30
_TRUNCATED = "\n\n… (truncated)"


class ProposedComment(BaseModel):
    """One inline comment as the model proposes it."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(min_length=1)
    line: int = Field(ge=1)
    side: Literal["LEFT", "RIGHT"] = "RIGHT"
    body: str = Field(min_length=1)


class PullState(BaseModel):
    """What the planner needs to know about the pull request now."""

    repo: str
    number: int
    head_sha: str = Field(min_length=7)
    draft: bool = False
    state: Literal["open", "closed"] = "open"
    #: path → ``patch`` of ``pulls/list-files`` (None when GitHub omits it: binary or too large).
    files: dict[str, str | None]


class ReviewHistory(BaseModel):
    """What Reynolds reviewed before on this PR (from the effect ledger or ``pulls/list-reviews``)."""

    reviewed_shas: list[str] = []
    #: The head SHA of the last review, and the PR's files then or the compare patches since (either helps).
    last_sha: str | None = None
    previous_files: dict[str, str | None] | None = None
    compare_files: dict[str, str | None] | None = None


class ReviewPolicy(BaseModel):
    """The ``reviews:`` key of the repository's policy file, and whether a person asked (``/reynolds review``)."""

    enabled: bool = False
    drafts: bool = False
    asked: bool = False


class InlineComment(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    line: int
    side: Literal["LEFT", "RIGHT"]
    body: str


class ReviewPlan(BaseModel):
    """Either a review to send (``skip`` None) or why not."""

    key: str
    skip: str | None = None
    commit_id: str | None = None
    event: Literal["COMMENT"] = "COMMENT"
    body: str = ""
    comments: list[InlineComment] = []
    #: Proposed comments not sent inline (their anchor was not a changed line of this push).
    moved: list[ProposedComment] = []


def review_key(repo: str, number: int, head_sha: str) -> str:
    """The idempotency key of the one review per head SHA."""
    return f"review:{repo.lower()}#{number}@{head_sha}"


def _cap(text: str, limit: int = MAX_BODY) -> str:
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def allowed_anchors(pr: PullState, history: ReviewHistory) -> set[Anchor]:
    """Where inline comments may go: the lines this push changed (all changed lines on a first review)."""
    if history.last_sha is None or history.last_sha == pr.head_sha:
        return anchors(pr.files, changed_only=True)
    if history.compare_files is None and history.previous_files is None:
        # A re-review that cannot tell what the new commits changed comments on nothing inline rather than on
        # lines an earlier review already covered.
        return set()
    return lines_changed_since(pr.files, compare_files=history.compare_files,
                               previous_pr_files=history.previous_files)


def plan_review(pr: PullState, history: ReviewHistory, policy: ReviewPolicy, *, summary: str,
                proposed: Iterable[ProposedComment]) -> ReviewPlan:
    """Decide the review of ``pr`` at its head SHA (see the module docstring)."""
    key = review_key(pr.repo, pr.number, pr.head_sha)
    if pr.state != "open":
        return ReviewPlan(key=key, skip="the pull request is closed")
    if not (policy.enabled or policy.asked):
        return ReviewPlan(key=key, skip="reviews are not enabled by the repository's policy")
    if pr.draft and not (policy.drafts or policy.asked):
        return ReviewPlan(key=key, skip="draft pull request (reviews.drafts is off)")
    if pr.head_sha in history.reviewed_shas:
        return ReviewPlan(key=key, skip=f"already reviewed at {pr.head_sha[:7]}")
    allowed = allowed_anchors(pr, history)
    inline: list[InlineComment] = []
    moved: list[ProposedComment] = []
    seen: set[tuple[str, str, int, str]] = set()
    for c in proposed:
        ident = (c.path, c.side, c.line, c.body)
        if ident in seen:
            continue
        seen.add(ident)
        if (c.path, c.side, c.line) in allowed and len(inline) < MAX_INLINE:
            inline.append(InlineComment(path=c.path, line=c.line, side=c.side, body=_cap(c.body)))
        else:
            moved.append(c)
    body = summary.strip() or "Reviewed."
    if moved:
        notes = "\n".join(f"- `{c.path}:{c.line}` — {c.body.strip()}" for c in moved)
        body += "\n\n**Other notes** (on lines this push did not change):\n" + notes
    return ReviewPlan(key=key, commit_id=pr.head_sha, body=_cap(body), comments=inline, moved=moved)


def reviewed_shas(reviews: Iterable[Mapping[str, object]], bot_login: str) -> list[str]:
    """The head SHAs Reynolds already reviewed, from ``pulls/list-reviews`` (oldest first): a second source next to
    the effect ledger, for a review that was posted but whose ledger entry was lost in a crash."""
    out: list[str] = []
    for r in reviews:
        user = r.get("user")
        login = user.get("login") if isinstance(user, Mapping) else None
        sha = r.get("commit_id")
        if isinstance(login, str) and login.lower() == bot_login.lower() and isinstance(sha, str) and sha not in out:
            out.append(sha)
    return out


def files_from_list(entries: Iterable[Mapping[str, object]]) -> dict[str, str | None]:
    """``pulls/list-files`` (or compare ``files``) entries → path → patch."""
    out: dict[str, str | None] = {}
    for e in entries:
        name, patch = e.get("filename"), e.get("patch")
        if isinstance(name, str):
            out[name] = patch if isinstance(patch, str) else None
    return out
