"""Issue → draft pull request: the branch name and the Git Data API sequence of one approved change set, as data
(pure). A writer executes it (:mod:`shared.platforms.github.git_writer`).

The sequence is GitHub's documented way to commit without a clone (REST reference, Git database: "create a blob
for each file, a tree with ``base_tree`` set to the parent's tree, a commit whose parent is the branch head, then
create or update the reference"; operation ids ``git/create-blob``, ``git/create-tree``, ``git/create-commit``,
``git/create-ref``, ``git/update-ref``). The ref is moved without ``force``: GitHub refuses a non-fast-forward,
so a branch someone else moved in between is never overwritten.

Refusals (a :class:`BranchRefused` reason, never an API call): the default branch, a protected branch, a branch
not under ``reynolds/``, an existing branch Reynolds did not create, a PR whose iteration budget is spent, an
empty change set, an unsafe path, or a workflow file (``.github/workflows/``: GitHub requires the ``workflows``
permission, which Reynolds does not request). Every commit message carries a ``Reynolds-Change-Set: <key>`` trailer: the
writer finds it at the branch head after a crash and does nothing twice.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PREFIX = "reynolds/"
SLUG_MAX = 40
TRAILER = "Reynolds-Change-Set"
#: Commits Reynolds may push to one PR (the first included) before a person must take over.
DEFAULT_ITERATION_BUDGET = 5


def slug(title: str) -> str:
    """Lowercase ASCII words joined by ``-``, at most 40 characters, cut at a word boundary when one is near."""
    ascii_ = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_).strip("-")
    if len(words) > SLUG_MAX:
        cut = words[:SLUG_MAX]
        boundary = cut.rfind("-")
        words = (cut[:boundary] if boundary >= SLUG_MAX // 2 else cut).strip("-")
    return words or "change"


def branch_name(issue: int, title: str) -> str:
    """``reynolds/<issue>-<slug>``."""
    if issue < 1:
        raise ValueError("issue number must be positive")
    return f"{PREFIX}{issue}-{slug(title)}"


class FileChange(BaseModel):
    """One file of a change set: its new content, or None to delete it."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(min_length=1, max_length=4096)
    content: str | None


class BranchState(BaseModel):
    """What the writer read before planning."""

    repo: str
    default_branch: str
    protected: list[str] = []
    branch: str
    base: str
    #: The commit the branch points at (None: the branch does not exist yet) and its tree.
    branch_sha: str | None = None
    branch_tree: str | None = None
    branch_head_message: str | None = None
    #: The base branch's commit and tree (a new branch starts there).
    base_sha: str
    base_tree: str
    #: Branches Reynolds created (from the effect ledger).
    owned: list[str] = []
    #: Commits Reynolds already pushed to this PR's branch.
    iterations: int = 0


class BlobStep(BaseModel):
    op: Literal["blob"] = "blob"
    path: str
    content: str


class TreeStep(BaseModel):
    op: Literal["tree"] = "tree"
    base_tree: str
    #: path → index of the blob step giving its sha, or None to delete the path.
    entries: dict[str, int | None]


class CommitStep(BaseModel):
    op: Literal["commit"] = "commit"
    message: str
    parent: str


class RefStep(BaseModel):
    op: Literal["create_ref", "update_ref"]
    ref: str  # "refs/heads/<branch>"
    #: update_ref only: the sha the branch must still point at (the planner read it), never forced.
    expected: str | None = None


class GitPlan(BaseModel):
    """The steps of one commit, in order: blobs, one tree, one commit, one ref write."""

    key: str
    branch: str
    blobs: list[BlobStep]
    tree: TreeStep
    commit: CommitStep
    ref: RefStep


class BranchRefused(BaseModel):
    key: str
    reason: str


def _unsafe(path: str) -> bool:
    parts = path.split("/")
    return path.startswith("/") or any(p in ("", ".", "..") for p in parts) or parts[0] == ".git" or "\0" in path


def change_set_key(repo: str, branch: str, change_set_id: str) -> str:
    """The idempotency key of one approved change set on one branch."""
    return f"commit:{repo.lower()}:{branch}:{change_set_id}"


def already_applied(state: BranchState, key: str) -> bool:
    """The branch head carries this change set's trailer (a crash after the ref moved, or a redelivery)."""
    return bool(state.branch_head_message) and f"{TRAILER}: {key}" in (state.branch_head_message or "")


def plan_commit(state: BranchState, files: list[FileChange], *, message: str, change_set_id: str,
                budget: int = DEFAULT_ITERATION_BUDGET) -> GitPlan | BranchRefused:
    """The Git Data sequence committing ``files`` on ``state.branch`` (see the module docstring)."""
    key = change_set_key(state.repo, state.branch, change_set_id)
    b = state.branch
    if b == state.default_branch:
        return BranchRefused(key=key, reason=f"{b} is the default branch")
    if b in state.protected:
        return BranchRefused(key=key, reason=f"{b} is a protected branch")
    if not b.startswith(PREFIX):
        return BranchRefused(key=key, reason=f"{b} is not a Reynolds branch ({PREFIX}…)")
    if state.branch_sha is not None and b not in state.owned:
        return BranchRefused(key=key, reason=f"{b} exists and Reynolds did not create it")
    if state.iterations >= budget:
        return BranchRefused(key=key, reason=f"the iteration budget of this pull request ({budget}) is spent")
    if not files:
        return BranchRefused(key=key, reason="the change set is empty")
    bad = [f.path for f in files if _unsafe(f.path)]
    if bad:
        return BranchRefused(key=key, reason=f"unsafe path(s): {', '.join(bad)}")
    workflows = [f.path for f in files if f.path.startswith(".github/workflows/")]
    if workflows:
        # GitHub refuses an App's change to a workflow file without the "workflows" permission, which Reynolds
        # does not ask for: a person makes those changes.
        return BranchRefused(key=key, reason=f"workflow files need a person: {', '.join(workflows)}")
    blobs: list[BlobStep] = []
    entries: dict[str, int | None] = {}
    for f in files:
        if f.content is None:
            entries[f.path] = None
        else:
            entries[f.path] = len(blobs)
            blobs.append(BlobStep(path=f.path, content=f.content))
    exists = state.branch_sha is not None
    parent = state.branch_sha if exists else state.base_sha
    tree = state.branch_tree if exists else state.base_tree
    if parent is None or tree is None:
        return BranchRefused(key=key, reason=f"the state of {b} lacks its head commit or tree")
    full_message = f"{message.strip()}\n\n{TRAILER}: {key}\n"
    ref = RefStep(op="update_ref", ref=f"refs/heads/{b}", expected=parent) if exists else RefStep(
        op="create_ref", ref=f"refs/heads/{b}")
    return GitPlan(key=key, branch=b, blobs=blobs, tree=TreeStep(base_tree=tree, entries=entries),
                   commit=CommitStep(message=full_message, parent=parent), ref=ref)
