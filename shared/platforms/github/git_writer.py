"""Run a :class:`shared.pulls.branch.GitPlan` through githubkit: read the branch state, then blobs → tree → commit →
ref (GitHub's REST operations ``git/get-ref``, ``git/get-commit``, ``git/create-blob``, ``git/create-tree``,
``git/create-commit``, ``git/create-ref``, ``git/update-ref``; ``repos/get`` for the default branch).

This is the typed writer's body for "propose_changes" once approved; the effect ledger and pacer wrap it (issue
"Act"). It is safe to run again after a crash: blobs and trees are content-addressed (the same on a retry), a
commit that was made but never referenced is unreachable and harmless, and a ref already moved to a commit with
this change set's trailer is found by :func:`read_state` + :func:`shared.pulls.branch.already_applied`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from githubkit import GitHub
from githubkit.exception import RequestFailed
from githubkit_schemas.latest.types import ReposOwnerRepoGitTreesPostBodyPropTreeItemsType as TreeItem

from shared.pulls.branch import BranchRefused, BranchState, GitPlan


@dataclass(frozen=True)
class Pushed:
    """The outcome of a plan: the commit the branch now points at."""

    branch: str
    commit_sha: str
    created: bool


class RefRefused(Exception):
    """GitHub refused the ref write (422): the branch moved since it was read (not a fast-forward), was created
    meanwhile, or is protected. Nothing was overwritten; read the state and plan again, or tell a person."""


def _split(repo: str) -> tuple[str, str]:
    owner, _, name = repo.partition("/")
    return owner, name


def _head(gh: GitHub[Any], repo: str, branch: str) -> tuple[str, str, str] | None:
    """(commit sha, tree sha, message) of ``branch``, or None when it does not exist."""
    owner, name = _split(repo)
    try:
        sha = gh.rest.git.get_ref(owner, name, f"heads/{branch}").parsed_data.object_.sha
    except RequestFailed as exc:
        if exc.response.status_code == 404:
            return None
        raise
    commit = gh.rest.git.get_commit(owner, name, sha).parsed_data
    return sha, commit.tree.sha, commit.message


def read_state(gh: GitHub[Any], repo: str, *, branch: str, base: str | None = None, protected: list[str] | None = None,
               owned: list[str] | None = None, iterations: int = 0) -> BranchState:
    """What :func:`shared.pulls.branch.plan_commit` needs, read from GitHub (``owned``/``iterations`` come from the
    effect ledger; ``protected`` from the repository's rules as the caller knows them)."""
    owner, name = _split(repo)
    default = gh.rest.repos.get(owner, name).parsed_data.default_branch
    base_branch = base or default
    base_head = _head(gh, repo, base_branch)
    if base_head is None:
        raise ValueError(f"base branch {base_branch} of {repo} does not exist")
    head = _head(gh, repo, branch)
    return BranchState(repo=repo, default_branch=default, protected=list(protected or []), branch=branch,
                       base=base_branch, branch_sha=head[0] if head else None, branch_tree=head[1] if head else None,
                       branch_head_message=head[2] if head else None, base_sha=base_head[0], base_tree=base_head[1],
                       owned=list(owned or []), iterations=iterations)


def execute(gh: GitHub[Any], repo: str, plan: GitPlan | BranchRefused) -> Pushed:
    """Run ``plan``; a refusal raises ``PermissionError`` (nothing is called), a moved branch :class:`RefRefused`."""
    if isinstance(plan, BranchRefused):
        raise PermissionError(plan.reason)
    owner, name = _split(repo)
    blob_shas = [gh.rest.git.create_blob(owner, name, content=b.content, encoding="utf-8").parsed_data.sha
                 for b in plan.blobs]
    entries: list[TreeItem] = [
        {"path": path, "mode": "100644", "type": "blob", "sha": None if index is None else blob_shas[index]}
        for path, index in plan.tree.entries.items()]
    tree = gh.rest.git.create_tree(owner, name, base_tree=plan.tree.base_tree, tree=entries).parsed_data.sha
    commit = gh.rest.git.create_commit(owner, name, message=plan.commit.message, tree=tree,
                                       parents=[plan.commit.parent]).parsed_data.sha
    if plan.ref.op == "create_ref":
        try:
            gh.rest.git.create_ref(owner, name, ref=plan.ref.ref, sha=commit)
        except RequestFailed as exc:
            if exc.response.status_code == 422:
                raise RefRefused(f"{plan.ref.ref} could not be created: {exc.response.text[:200]}") from exc
            raise
        return Pushed(plan.branch, commit, True)
    try:
        gh.rest.git.update_ref(owner, name, plan.ref.ref.removeprefix("refs/"), sha=commit, force=False)
    except RequestFailed as exc:
        if exc.response.status_code == 422:
            raise RefRefused(f"{plan.ref.ref} moved since it was read: {exc.response.text[:200]}") from exc
        raise
    return Pushed(plan.branch, commit, False)
