"""Review planning and the issue → draft PR branch planner (shared/pulls), and the Git Data writer
(shared/platforms/github/git_writer.py) against the fake GitHub's routes through githubkit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from githubkit import GitHub

from shared.platforms.github import git_writer
from shared.pulls import branch as br
from shared.pulls.patches import lines_changed_since, read_patch
from shared.pulls.review import (
    MAX_BODY,
    ProposedComment,
    PullState,
    ReviewHistory,
    ReviewPolicy,
    files_from_list,
    plan_review,
    review_key,
)
from tools.fakes.github import FakeGitHub, git_api, pulls_api, repos_api
from tools.fakes.github.diffs import diff_trees

REPO = "octo/app"
BOT = "reynolds[bot]"
TOKEN = "ghs_reynolds"
BASE = "".join(f"line {i}\n" for i in range(1, 31))


def edit(text: str, changes: dict[int, str]) -> str:
    lines = text.splitlines(keepends=True)
    for n, new in changes.items():
        lines[n - 1] = new + "\n"
    return "".join(lines)


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as gh:
        gh.add_repo(REPO)
        gh.add_user(BOT, type="Bot", token=TOKEN)
        gh.add_user("alice")
        repos_api.add_file(gh, REPO, "app.py", BASE)
        yield gh
        gh.assert_no_unexpected()


def client(fake: FakeGitHub) -> GitHub[Any]:
    return GitHub(TOKEN, base_url=fake.base_url, auto_retry=False, timeout=5, http_cache=False)


def pr_state(gh: GitHub[Any], number: int) -> PullState:
    pr = gh.rest.pulls.get("octo", "app", number).parsed_data
    files = files_from_list(gh.rest.pulls.list_files("octo", "app", number).json())
    return PullState(repo=REPO, number=number, head_sha=pr.head.sha, draft=bool(pr.draft), state=pr.state,
                     files=files)


# ------------------------------------------------------------------------------------------------ patches
def test_patch_reading_agrees_with_the_fakes_diff_model() -> None:
    old = BASE + "tail\n"
    for new in (edit(old, {3: "x"}), edit(old, {1: "a", 30: "b"}), "", "only\n", edit(old, {15: "m", 16: "n"})):
        for d in diff_trees({"f": old}, {"f": new}):
            lines = read_patch(d.patch)
            assert lines.commentable == d.commentable
            assert lines.changed <= lines.commentable
    assert read_patch(None).commentable == frozenset()


def test_lines_changed_since_from_previous_files() -> None:
    first = {d.filename: d.patch for d in diff_trees({"f": BASE}, {"f": edit(BASE, {5: "five"})})}
    second = {d.filename: d.patch for d in diff_trees({"f": BASE}, {"f": edit(BASE, {5: "five", 20: "twenty"})})}
    assert lines_changed_since(second, previous_pr_files=first) == {("f", "RIGHT", 20)}
    assert lines_changed_since(second) == {("f", "RIGHT", 5), ("f", "LEFT", 5), ("f", "RIGHT", 20),
                                           ("f", "LEFT", 20)}
    compare = {d.filename: d.patch for d in diff_trees({"f": edit(BASE, {5: "five"})},
                                                       {"f": edit(BASE, {5: "five", 20: "twenty"})})}
    assert lines_changed_since(second, compare_files=compare) == {("f", "RIGHT", 20)}


# ------------------------------------------------------------------------------------------------- review
def test_a_pr_pushed_three_times_gets_one_review_per_head_sha_on_changed_lines_only(fake: FakeGitHub) -> None:
    gh = client(fake)
    policy = ReviewPolicy(enabled=True)
    history = ReviewHistory()
    pushes = [{5: "five"}, {5: "five", 12: "twelve"}, {5: "five", 12: "twelve", 25: "twenty-five"}]
    sent_anchors = []
    for i, changes in enumerate(pushes):
        pulls_api.add_pull(fake, REPO, 7, head="feature", files={"app.py": edit(BASE, changes)}, login="alice")
        state = pr_state(gh, 7)
        # The model proposes a comment on every line it ever saw changed, plus an unchanged one.
        proposed = [ProposedComment(path="app.py", line=n, body=f"about {n}") for n in (5, 12, 25, 1)]
        plan = plan_review(state, history, policy, summary=f"Push {i + 1}", proposed=proposed)
        assert plan.skip is None
        assert plan.key == review_key(REPO, 7, state.head_sha)
        got = gh.rest.pulls.create_review("octo", "app", 7, commit_id=plan.commit_id, body=plan.body,
                                          event=plan.event, comments=[c.model_dump() for c in plan.comments])
        assert got.status_code == 200  # GitHub accepted every anchor: no 422
        sent_anchors.append([c.line for c in plan.comments])
        assert "`app.py:1`" in plan.body  # the unchanged line went to the summary, not lost
        # a redelivered synchronize for the same head does nothing
        history = ReviewHistory(reviewed_shas=[*history.reviewed_shas, state.head_sha], last_sha=state.head_sha,
                                previous_files=state.files)
        again = plan_review(state, history, policy, summary="again", proposed=proposed)
        assert again.skip is not None
        assert again.skip.startswith("already reviewed")
    assert sent_anchors == [[5], [12], [25]]
    assert len(pulls_api.reviews(fake, REPO, 7)) == 3
    assert len({x.commit_id for x in pulls_api.reviews(fake, REPO, 7)}) == 3


def test_review_gates_and_caps() -> None:
    files = {d.filename: d.patch for d in diff_trees({"f": BASE}, {"f": edit(BASE, {5: "five"})})}
    pr = PullState(repo=REPO, number=1, head_sha="a" * 40, draft=True, files=files)
    none = ReviewHistory()
    assert plan_review(pr, none, ReviewPolicy(enabled=False), summary="s", proposed=[]).skip
    assert "draft" in (plan_review(pr, none, ReviewPolicy(enabled=True), summary="s", proposed=[]).skip or "")
    assert plan_review(pr, none, ReviewPolicy(enabled=True, drafts=True), summary="s", proposed=[]).skip is None
    assert plan_review(pr, none, ReviewPolicy(asked=True), summary="s", proposed=[]).skip is None
    closed = pr.model_copy(update={"state": "closed", "draft": False})
    assert plan_review(closed, none, ReviewPolicy(asked=True), summary="s", proposed=[]).skip
    huge = plan_review(pr, none, ReviewPolicy(asked=True), summary="x" * 70_000,
                       proposed=[ProposedComment(path="f", line=5, body="y" * 70_000)] * 2)
    assert len(huge.body) <= MAX_BODY
    assert len(huge.comments) == 1  # duplicates dropped
    assert len(huge.comments[0].body) <= MAX_BODY
    # a re-review that cannot tell what changed sends nothing inline
    later = pr.model_copy(update={"head_sha": "b" * 40})
    blind = plan_review(later, ReviewHistory(reviewed_shas=["a" * 40], last_sha="a" * 40), ReviewPolicy(asked=True),
                        summary="s", proposed=[ProposedComment(path="f", line=5, body="z")])
    assert blind.comments == []
    assert len(blind.moved) == 1


# ------------------------------------------------------------------------------------------------- branch
@pytest.mark.parametrize(("issue", "title", "name"), [
    (23, "Crash on start!", "reynolds/23-crash-on-start"),
    (7, "Ünïcödé — titles & symbols", "reynolds/7-unicode-titles-symbols"),
    (9, "A very long title that keeps going well past the forty character limit", None),
    (4, "!!!", "reynolds/4-change"),
])
def test_branch_names(issue: int, title: str, name: str | None) -> None:
    got = br.branch_name(issue, title)
    slug = got.split("-", 1)[1]
    assert len(slug) <= br.SLUG_MAX
    assert slug == slug.lower()
    assert slug.isascii()
    assert not slug.endswith("-")
    if name is not None:
        assert got == name
    with pytest.raises(ValueError, match="positive"):
        br.branch_name(0, title)


def _state(**kw: Any) -> br.BranchState:
    base: dict[str, Any] = {"repo": REPO, "default_branch": "main", "branch": "reynolds/1-x", "base": "main",
                            "base_sha": "1" * 40, "base_tree": "2" * 40}
    return br.BranchState(**{**base, **kw})


def test_planner_refusals() -> None:
    files = [br.FileChange(path="a.py", content="x")]

    def reason(state: br.BranchState, fs: list[br.FileChange] = files) -> str:
        got = br.plan_commit(state, fs, message="m", change_set_id="cs1")
        assert isinstance(got, br.BranchRefused)
        return got.reason

    assert "default branch" in reason(_state(branch="main"))
    assert "protected" in reason(_state(branch="reynolds/1-x", protected=["reynolds/1-x"]))
    assert "not a Reynolds branch" in reason(_state(branch="feature"))
    assert "did not create" in reason(_state(branch_sha="3" * 40, branch_tree="4" * 40))
    assert "budget" in reason(_state(iterations=5))
    assert "empty" in reason(_state(), [])
    assert "unsafe" in reason(_state(), [br.FileChange(path="../etc/passwd", content="x")])
    assert "unsafe" in reason(_state(), [br.FileChange(path=".git/config", content="x")])
    assert "workflow files" in reason(_state(), [br.FileChange(path=".github/workflows/ci.yml", content="x")])
    plan = br.plan_commit(_state(), files, message="m", change_set_id="cs1")
    assert isinstance(plan, br.GitPlan)
    assert (plan.ref.op, plan.commit.parent, plan.tree.base_tree) == ("create_ref", "1" * 40, "2" * 40)


def test_issue_to_branch_then_iteration_through_the_fake(fake: FakeGitHub) -> None:
    gh = client(fake)
    name = br.branch_name(23, "Fix the crash")
    state = git_writer.read_state(gh, REPO, branch=name)
    plan = br.plan_commit(state, [br.FileChange(path="app.py", content=edit(BASE, {3: "fixed"})),
                                  br.FileChange(path="docs/fix.md", content="why\n")],
                          message="Fix the crash (#23)", change_set_id="cs-1")
    pushed = git_writer.execute(gh, REPO, plan)
    assert pushed.created
    files = git_api.snapshot(git_api.store(fake), pushed.commit_sha)
    assert files["app.py"].decode().splitlines()[2] == "fixed"
    assert set(files) == {"app.py", "docs/fix.md"}
    # crash after the ref moved, the approval redelivered: the trailer says it is done
    again = git_writer.read_state(gh, REPO, branch=name, owned=[name], iterations=1)
    assert br.already_applied(again, plan.key)
    # a review comment by a person → the next approved change set, a fast-forward on the same branch
    plan2 = br.plan_commit(again, [br.FileChange(path="docs/fix.md", content=None)], message="Address review",
                           change_set_id="cs-2")
    assert isinstance(plan2, br.GitPlan)
    assert plan2.ref.op == "update_ref"
    pushed2 = git_writer.execute(gh, REPO, plan2)
    assert not pushed2.created
    assert set(git_api.snapshot(git_api.store(fake), pushed2.commit_sha)) == {"app.py"}
    assert git_api.store(fake).commits[pushed2.commit_sha].parents == [pushed.commit_sha]
    # someone pushed meanwhile: the writer's ref update is refused as not a fast-forward, nothing overwritten
    stale = br.plan_commit(again, [br.FileChange(path="x.md", content="x")], message="late", change_set_id="cs-3")
    with pytest.raises(git_writer.RefRefused):
        git_writer.execute(gh, REPO, stale)
    assert git_api.branch_head(fake, REPO, name) == pushed2.commit_sha
    # the default branch is refused before any call
    with pytest.raises(PermissionError):
        git_writer.execute(gh, REPO, br.plan_commit(git_writer.read_state(gh, REPO, branch="main"),
                                                    [br.FileChange(path="a", content="b")], message="m",
                                                    change_set_id="cs-4"))
    writes = [c for c in fake.writes() if "/git/" in c.path]
    assert [c.path.rsplit("/git/", 1)[1] for c in writes] == [
        "blobs", "blobs", "trees", "commits", "refs", "trees", "commits", f"refs/heads/{name}",
        "blobs", "trees", "commits"]  # the stale plan's objects exist, unreferenced; its ref update was refused


def test_a_protected_branch_is_refused_by_github_too(fake: FakeGitHub) -> None:
    gh = client(fake)
    name = br.branch_name(5, "x")
    first = git_writer.execute(gh, REPO, br.plan_commit(git_writer.read_state(gh, REPO, branch=name),
                                                        [br.FileChange(path="a", content="1")], message="m",
                                                        change_set_id="a"))
    git_api.protect_branch(fake, REPO, name)
    # the planner did not know (a stale rule set): GitHub refuses, the writer says so and nothing moved
    state = git_writer.read_state(gh, REPO, branch=name, owned=[name], iterations=1)
    with pytest.raises(git_writer.RefRefused, match="Protected branch"):
        git_writer.execute(gh, REPO, br.plan_commit(state, [br.FileChange(path="a", content="2")], message="m",
                                                    change_set_id="b"))
    assert git_api.branch_head(fake, REPO, name) == first.commit_sha


def test_re_review_reads_the_compare_of_the_new_commits(fake: FakeGitHub) -> None:
    gh = client(fake)
    pulls_api.add_pull(fake, REPO, 8, head="topic", files={"app.py": edit(BASE, {4: "four"})}, login="alice")
    first = pr_state(gh, 8)
    pulls_api.add_pull(fake, REPO, 8, head="topic", files={"app.py": edit(BASE, {4: "four", 22: "x"})})
    now = pr_state(gh, 8)
    cmp = gh.rest.repos.compare_commits("octo", "app", f"{first.head_sha}...{now.head_sha}").parsed_data
    assert (cmp.status, cmp.ahead_by, cmp.total_commits) == ("ahead", 1, 1)
    history = ReviewHistory(reviewed_shas=[first.head_sha], last_sha=first.head_sha,
                            compare_files=files_from_list([f.model_dump() for f in cmp.files or []]))
    plan = plan_review(now, history, ReviewPolicy(enabled=True), summary="s",
                       proposed=[ProposedComment(path="app.py", line=n, body="b") for n in (4, 22)])
    assert [c.line for c in plan.comments] == [22]
    assert gh.rest.pulls.create_review("octo", "app", 8, commit_id=plan.commit_id, body=plan.body, event="COMMENT",
                                       comments=[c.model_dump() for c in plan.comments]).status_code == 200
    with pytest.raises(Exception, match="404"):
        gh.rest.repos.compare_commits("octo", "app", "main...nope")


def test_a_branch_created_meanwhile_is_not_overwritten(fake: FakeGitHub) -> None:
    gh = client(fake)
    name = br.branch_name(6, "race")
    state = git_writer.read_state(gh, REPO, branch=name)
    someone = git_api.commit_files(fake, REPO, name, {"theirs.txt": "x"}, "their work", "alice")
    plan = br.plan_commit(state, [br.FileChange(path="a", content="1")], message="m", change_set_id="r")
    with pytest.raises(git_writer.RefRefused, match="Reference already exists"):
        git_writer.execute(gh, REPO, plan)
    assert git_api.branch_head(fake, REPO, name) == someone
    # planning again sees a branch Reynolds did not create, and refuses before any call
    again = br.plan_commit(git_writer.read_state(gh, REPO, branch=name), [br.FileChange(path="a", content="1")],
                           message="m", change_set_id="r")
    assert isinstance(again, br.BranchRefused)
    assert "did not create" in again.reason


def test_patch_reader_agrees_with_the_fake_on_many_random_edits() -> None:
    import random

    rng = random.Random(23)
    for _ in range(300):
        old = [f"l{rng.randrange(8)}" for _ in range(rng.randrange(0, 40))]
        new = list(old)
        for _ in range(rng.randrange(1, 6)):
            op = rng.choice("aid")
            at = rng.randrange(len(new) + 1)
            if op == "a":
                new.insert(at, f"n{rng.randrange(99)}")
            elif new and at < len(new):
                if op == "d":
                    del new[at]
                else:
                    new[at] = f"m{rng.randrange(99)}"
        before = "\n".join(old) + "\n" if old else None
        after = "\n".join(new) + "\n" if new else None
        for d in diff_trees({"f": before} if before else {}, {"f": after} if after else {}):
            lines = read_patch(d.patch)
            assert lines.commentable == d.commentable, (old, new, d.patch)
            assert sum(1 for s, _ in lines.changed if s == "RIGHT") == d.additions
            assert sum(1 for s, _ in lines.changed if s == "LEFT") == d.deletions


def test_reviewed_shas_from_list_reviews() -> None:
    from shared.pulls.review import reviewed_shas

    reviews: list[dict[str, Any]] = [{"user": {"login": "alice"}, "commit_id": "a" * 40},
               {"user": {"login": "Reynolds[bot]"}, "commit_id": "b" * 40},
               {"user": {"login": "reynolds[bot]"}, "commit_id": "b" * 40},
               {"user": None, "commit_id": "c" * 40}]
    assert reviewed_shas(reviews, "reynolds[bot]") == ["b" * 40]
