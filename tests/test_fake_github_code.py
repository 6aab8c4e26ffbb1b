"""The fake GitHub's pull request, Git Data and Actions routes, through the real githubkit client: what they
answer and each refusal of their tables (tools/fakes/github/{pulls_api,git_api,actions_api}.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from githubkit import GitHub
from githubkit.exception import RequestFailed

from tools.fakes.github import FakeGitHub, actions_api, git_api, pulls_api, repos_api
from tools.fakes.github.diffs import file_diff

REPO = "octo/app"
BOT = "reynolds[bot]"
BOT_TOKEN = "ghs_reynolds"
ALICE_TOKEN = "ghp_alice"
BASE_TEXT = "".join(f"line {i}\n" for i in range(1, 21))


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def fake(clock: _Clock) -> Iterator[FakeGitHub]:
    with FakeGitHub(clock=clock) as gh:
        gh.add_repo(REPO)
        gh.add_user("alice", token=ALICE_TOKEN)
        gh.add_user(BOT, type="Bot", token=BOT_TOKEN)
        repos_api.add_file(gh, REPO, "src/app.py", BASE_TEXT)
        repos_api.add_file(gh, REPO, "README.md", "hello\n")
        yield gh
        gh.assert_no_unexpected()


def gh_for(fake: FakeGitHub, token: str = BOT_TOKEN) -> GitHub:
    return GitHub(token, base_url=fake.base_url, auto_retry=False, timeout=5, http_cache=False)


def refused(exc: pytest.ExceptionInfo[RequestFailed]) -> tuple[int, Any]:
    return exc.value.response.status_code, exc.value.response.json()


def _changed(text: str, line: int, new: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[line - 1] = new + "\n"
    return "".join(lines)


@pytest.fixture
def pr(fake: FakeGitHub) -> int:
    pulls_api.add_pull(fake, REPO, 5, head="feature", files={"src/app.py": _changed(BASE_TEXT, 10, "changed 10"),
                                                             "NEW.md": "a\nb\n"}, login="alice")
    return 5


# ------------------------------------------------------------------------------------------------- diffs
def test_diff_model_gives_patches_and_commentable_lines() -> None:
    d = file_diff("f", BASE_TEXT, _changed(BASE_TEXT, 10, "changed 10"))
    assert d is not None
    assert d.status == "modified"
    assert (d.additions, d.deletions) == (1, 1)
    assert d.patch.splitlines()[0] == "@@ -7,7 +7,7 @@"
    assert "-line 10" in d.patch
    assert "+changed 10" in d.patch
    assert ("RIGHT", 10) in d.commentable
    assert ("LEFT", 10) in d.commentable
    assert ("RIGHT", 7) in d.commentable
    assert ("RIGHT", 13) in d.commentable
    assert ("RIGHT", 6) not in d.commentable
    assert ("RIGHT", 14) not in d.commentable
    added = file_diff("n", None, "x\ny\n")
    assert added is not None
    assert added.status == "added"
    assert added.patch.startswith("@@ -0,0 +1,2 @@")
    assert added.commentable == {("RIGHT", 1), ("RIGHT", 2)}
    assert file_diff("same", "a\n", "a\n") is None


# ------------------------------------------------------------------------------------------------- pulls
def test_pull_and_its_files_through_githubkit(fake: FakeGitHub, pr: int) -> None:
    gh = gh_for(fake)
    got = gh.rest.pulls.get("octo", "app", pr).parsed_data
    assert (got.number, got.head.ref, got.base.ref, got.draft) == (5, "feature", "main", False)
    files: Any = gh.rest.pulls.list_files("octo", "app", pr).parsed_data
    assert [(f.filename, f.status) for f in files] == [("NEW.md", "added"), ("src/app.py", "modified")]
    assert files[1].patch is not None
    assert "+changed 10" in files[1].patch
    first_head = got.head.sha
    pulls_api.add_pull(fake, REPO, pr, head="feature", files={"NEW.md": "a\nb\nc\n"})  # a push
    assert gh.rest.pulls.get("octo", "app", pr).parsed_data.head.sha != first_head


def test_review_on_diff_lines_is_stored(fake: FakeGitHub, pr: int) -> None:
    gh = gh_for(fake)
    head = gh.rest.pulls.get("octo", "app", pr).parsed_data.head.sha
    review = gh.rest.pulls.create_review("octo", "app", pr, commit_id=head, body="Summary", event="COMMENT",
                                         comments=[{"path": "src/app.py", "line": 10, "side": "RIGHT", "body": "x"},
                                                   {"path": "src/app.py", "line": 10, "side": "LEFT", "body": "y"},
                                                   {"path": "NEW.md", "line": 2, "body": "z"}]).parsed_data
    assert (review.commit_id, review.state, review.user and review.user.login) == (head, "COMMENTED", BOT)
    listed: Any = gh.rest.pulls.list_reviews("octo", "app", pr).parsed_data
    assert [x.id for x in listed] == [review.id]
    assert len(pulls_api.reviews(fake, REPO, pr)[0].comments) == 3


@pytest.mark.parametrize(("comment", "errors"), [
    ({"path": "src/app.py", "line": 1, "side": "RIGHT", "body": "far from the hunk"},
     ["Pull request review thread line must be part of the diff"]),
    ({"path": "NEW.md", "line": 1, "side": "LEFT", "body": "added file has no left side"},
     ["Pull request review thread line must be part of the diff"]),
    ({"path": "README.md", "line": 1, "side": "RIGHT", "body": "unchanged file"},
     ["Pull request review thread line must be part of the diff and "
      "Pull request review thread diff hunk can't be blank"]),
])
def test_review_comment_outside_the_diff_is_refused_whole(fake: FakeGitHub, pr: int, comment: dict[str, Any],
                                                          errors: list[str]) -> None:
    gh = gh_for(fake)
    good = {"path": "src/app.py", "line": 10, "side": "RIGHT", "body": "fine"}
    with pytest.raises(RequestFailed) as exc:
        gh.rest.pulls.create_review("octo", "app", pr, body="s", event="COMMENT", comments=[good, comment])
    status, body = refused(exc)
    assert (status, body["message"], body["errors"]) == (422, "Unprocessable Entity", errors)
    assert pulls_api.reviews(fake, REPO, pr) == []  # all or nothing


def test_other_review_refusals(fake: FakeGitHub, pr: int) -> None:
    alice, bot = gh_for(fake, ALICE_TOKEN), gh_for(fake)
    with pytest.raises(RequestFailed) as exc:
        alice.rest.pulls.create_review("octo", "app", pr, event="APPROVE")
    assert refused(exc)[1]["errors"] == ["Review Can not approve your own pull request"]
    with pytest.raises(RequestFailed) as exc:
        bot.rest.pulls.create_review("octo", "app", pr, event="COMMENT")
    assert refused(exc)[1]["errors"] == ["Review Body can't be blank"]
    with pytest.raises(RequestFailed) as exc:
        bot.rest.pulls.create_review("octo", "app", pr, commit_id="0" * 40, body="s", event="COMMENT")
    assert refused(exc)[0] == 422
    with pytest.raises(RequestFailed) as exc:
        bot.rest.pulls.create_review("octo", "app", pr, body="x" * 65537, event="COMMENT")
    assert refused(exc)[1]["errors"][0]["message"] == "body is too long (maximum is 65536 characters)"
    with pytest.raises(RequestFailed) as exc:
        bot.rest.pulls.get("octo", "app", 99)
    assert refused(exc)[0] == 404


def test_review_anchor_checked_against_its_commit(fake: FakeGitHub, pr: int) -> None:
    gh = gh_for(fake)
    old_head = gh.rest.pulls.get("octo", "app", pr).parsed_data.head.sha
    pulls_api.add_pull(fake, REPO, pr, head="feature", files={"src/app.py": BASE_TEXT})  # revert line 10
    with pytest.raises(RequestFailed):
        gh.rest.pulls.create_review("octo", "app", pr, body="s", event="COMMENT",
                                    comments=[{"path": "src/app.py", "line": 10, "side": "RIGHT", "body": "x"}])
    ok = gh.rest.pulls.create_review("octo", "app", pr, commit_id=old_head, body="s", event="COMMENT",
                                     comments=[{"path": "src/app.py", "line": 10, "side": "RIGHT", "body": "x"}])
    assert ok.parsed_data.commit_id == old_head


def test_secondary_limit_applies_to_reviews(fake: FakeGitHub, pr: int) -> None:
    fake.secondary_rate_limit("POST", r"/pulls/\d+/reviews")
    gh = gh_for(fake)
    with pytest.raises(RequestFailed) as exc:
        gh.rest.pulls.create_review("octo", "app", pr, body="s", event="COMMENT")
    assert exc.value.response.status_code == 403
    assert exc.value.response.headers["retry-after"] == "60"


# ---------------------------------------------------------------------------------------------- git data
def test_git_data_sequence_creates_a_branch_the_contents_route_serves(fake: FakeGitHub) -> None:
    gh = gh_for(fake)
    base = gh.rest.git.get_ref("octo", "app", "heads/main").parsed_data.object_.sha
    base_tree = gh.rest.git.get_commit("octo", "app", base).parsed_data.tree.sha
    blob = gh.rest.git.create_blob("octo", "app", content="print('hi')\n", encoding="utf-8").parsed_data
    tree = gh.rest.git.create_tree("octo", "app", base_tree=base_tree, tree=[
        {"path": "src/new.py", "mode": "100644", "type": "blob", "sha": blob.sha},
        {"path": "README.md", "mode": "100644", "type": "blob", "sha": None}]).parsed_data
    assert {t.path for t in tree.tree} == {"src/app.py", "src/new.py"}
    commit = gh.rest.git.create_commit("octo", "app", message="Add new.py", tree=tree.sha, parents=[base]).parsed_data
    ref = gh.rest.git.create_ref("octo", "app", ref="refs/heads/reynolds/23-x", sha=commit.sha).parsed_data
    assert ref.object_.sha == commit.sha
    content = gh.rest.repos.get_content("octo", "app", "src/new.py", ref="reynolds/23-x").parsed_data
    assert getattr(content, "path", None) == "src/new.py"
    # fast-forward
    tree2 = gh.rest.git.create_tree("octo", "app", base_tree=tree.sha, tree=[
        {"path": "src/new.py", "mode": "100644", "type": "blob", "content": "print('2')\n"}]).parsed_data
    c2 = gh.rest.git.create_commit("octo", "app", message="2", tree=tree2.sha, parents=[commit.sha]).parsed_data
    moved = gh.rest.git.update_ref("octo", "app", "heads/reynolds/23-x", sha=c2.sha, force=False).parsed_data
    assert moved.object_.sha == c2.sha


def test_git_data_refusals(fake: FakeGitHub) -> None:
    gh = gh_for(fake)
    main = gh.rest.git.get_ref("octo", "app", "heads/main").parsed_data.object_.sha
    tree = gh.rest.git.get_commit("octo", "app", main).parsed_data.tree.sha

    def msg(call: Any) -> tuple[int, str]:
        with pytest.raises(RequestFailed) as exc:
            call()
        status, body = refused(exc)
        return status, body["message"]

    assert msg(lambda: gh.rest.git.create_ref("octo", "app", ref="refs/heads/main", sha=main)) == (
        422, "Reference already exists")
    assert msg(lambda: gh.rest.git.create_commit("octo", "app", message="m", tree="f" * 40, parents=[main])) == (
        422, "Tree SHA does not exist")
    assert msg(lambda: gh.rest.git.create_commit("octo", "app", message="m", tree=tree, parents=["e" * 40])) == (
        422, "Parent SHA does not exist or is not a commit object")
    side = gh.rest.git.create_commit("octo", "app", message="unrelated", tree=tree, parents=[]).parsed_data.sha
    gh.rest.git.create_ref("octo", "app", ref="refs/heads/topic", sha=main)
    assert msg(lambda: gh.rest.git.update_ref("octo", "app", "heads/topic", sha=side)) == (
        422, "Update is not a fast forward")
    assert gh.rest.git.update_ref("octo", "app", "heads/topic", sha=side, force=True).parsed_data.object_.sha == side
    assert msg(lambda: gh.rest.git.update_ref("octo", "app", "heads/nope", sha=main)) == (
        422, "Reference does not exist")
    assert msg(lambda: gh.rest.git.get_ref("octo", "app", "heads/nope")) == (404, "Not Found")
    git_api.protect_branch(fake, REPO, "main")
    child = gh.rest.git.create_commit("octo", "app", message="c", tree=tree, parents=[main]).parsed_data.sha
    assert msg(lambda: gh.rest.git.update_ref("octo", "app", "heads/main", sha=child)) == (
        422, "Protected branch update failed for refs/heads/main.")


# ------------------------------------------------------------------------------------------------ actions
@pytest.fixture
def run(fake: FakeGitHub, pr: int) -> int:
    actions_api.add_run(fake, REPO, 99, pull_request=pr, jobs=[
        {"name": "lint", "conclusion": "success", "log": "ok\n"},
        {"name": "test", "conclusion": "failure", "log": "##[error]Process completed with exit code 1.\n"}])
    return 99


def test_run_jobs_and_logs_through_githubkit(fake: FakeGitHub, run: int, clock: _Clock) -> None:
    gh = gh_for(fake)
    got = gh.rest.actions.get_workflow_run("octo", "app", run).parsed_data
    assert (got.conclusion, got.run_attempt, got.event) == ("failure", 1, "pull_request")
    assert got.pull_requests
    assert got.pull_requests[0].number == 5
    jobs = gh.rest.actions.list_jobs_for_workflow_run_attempt("octo", "app", run, 1).parsed_data.jobs
    assert [(j.name, j.conclusion) for j in jobs] == [("lint", "success"), ("test", "failure")]
    log = gh.rest.actions.download_job_logs_for_workflow_run("octo", "app", jobs[1].id)
    assert log.status_code == 200
    assert "exit code 1" in log.text
    assert [c.status for c in fake.calls if "logs" in c.path] == [302, 200]
    actions_api.set_logs_mode(fake, "direct")
    assert "exit code 1" in gh.rest.actions.download_job_logs_for_workflow_run("octo", "app", jobs[1].id).text
    suite = gh.rest.checks.get_suite("octo", "app", got.check_suite_id or 0).parsed_data
    assert (suite.conclusion, suite.head_sha) == ("failure", got.head_sha)


def test_expired_logs_and_stale_links_are_404(fake: FakeGitHub, run: int, clock: _Clock) -> None:
    gh = gh_for(fake)
    job = gh.rest.actions.list_jobs_for_workflow_run_attempt("octo", "app", run, 1).parsed_data.jobs[1]
    status, _h, _b = fake._process("GET", f"/repos/{REPO}/actions/jobs/{job.id}/logs", b"", login=BOT)
    link = _h["location"].split("127.0.0.1", 1)[1].split("/", 1)[1]
    clock.now += timedelta(minutes=2)
    assert status == 302
    assert fake.act(BOT, "GET", "/" + link)[0] == 404
    actions_api.expire_logs(fake, run)
    with pytest.raises(RequestFailed) as exc:
        gh.rest.actions.download_job_logs_for_workflow_run("octo", "app", job.id)
    assert refused(exc)[0] == 404
    with pytest.raises(RequestFailed) as exc:
        gh.rest.actions.list_jobs_for_workflow_run_attempt("octo", "app", run, 2)
    assert refused(exc)[0] == 404


def test_rerun_failed_jobs_makes_a_new_attempt(fake: FakeGitHub, run: int) -> None:
    gh = gh_for(fake)
    assert gh.rest.actions.re_run_workflow_failed_jobs("octo", "app", run).status_code == 201
    with pytest.raises(RequestFailed) as exc:  # attempt 2 is still queued
        gh.rest.actions.re_run_workflow_failed_jobs("octo", "app", run)
    assert refused(exc)[0] == 403
    jobs = gh.rest.actions.list_jobs_for_workflow_run_attempt("octo", "app", run, 2).parsed_data.jobs
    assert [(j.name, j.status) for j in jobs] == [("lint", "completed"), ("test", "queued")]
    actions_api.complete_attempt(fake, run, {"test": {"conclusion": "success", "log": "passed"}})
    got = gh.rest.actions.get_workflow_run("octo", "app", run).parsed_data
    assert (got.run_attempt, got.conclusion) == (2, "success")


# ------------------------------------------------------------------------------------------------ seeding
def test_seeding_from_the_scenario_format(fake: FakeGitHub) -> None:
    from tools.fakes.github import seeding

    seeding.seed(fake, pulls={REPO: [{"number": 5, "head": "feature", "base": "main",
                                      "files": {"src/app.py": "new\n"}, "draft": True},
                                     {"number": 5, "head": "feature", "files": {"src/app.py": "newer\n"}}]},
                 runs={REPO: [{"id": 99, "conclusion": "failure", "pull_request": 5,
                               "jobs": [{"name": "test", "conclusion": "failure", "log": "boom"}]},
                              {"id": 99, "jobs": [{"name": "test", "conclusion": "success", "log": "ok"}]}]})
    gh = gh_for(fake)
    pr = gh.rest.pulls.get("octo", "app", 5).parsed_data
    assert pr.draft is False  # the later item updated it
    run = gh.rest.actions.get_workflow_run("octo", "app", 99).parsed_data
    assert (run.run_attempt, run.conclusion, run.head_sha) == (2, "success", pr.head.sha)
    with pytest.raises(ValueError, match="conclude failure"):
        seeding.seed(fake, runs={REPO: [{"id": 7, "conclusion": "success",
                                         "jobs": [{"name": "t", "conclusion": "failure"}]}]})
    with pytest.raises(ValueError, match="pull number"):
        seeding.seed(fake, pulls={REPO: [{"number": 1, "head": "x", "files": {}}]})
    with pytest.raises(ValueError, match="extra"):
        seeding.seed(fake, pulls={REPO: [{"number": 9, "head": "x", "files": {}, "bogus": 1}]})


def test_reviews_and_pushes_produce_the_webhooks_github_sends(fake: FakeGitHub, pr: int) -> None:
    from shared.platforms.github import code_events

    writes: list[Any] = []
    fake.on_write.append(writes.append)
    gh = gh_for(fake)
    head = gh.rest.pulls.get("octo", "app", pr).parsed_data.head.sha
    gh.rest.pulls.create_review("octo", "app", pr, commit_id=head, body="ok", event="COMMENT")
    tree = gh.rest.git.get_commit("octo", "app", head).parsed_data.tree.sha
    child = gh.rest.git.create_commit("octo", "app", message="more", tree=tree, parents=[head]).parsed_data.sha
    gh.rest.git.update_ref("octo", "app", "heads/feature", sha=child)
    events = [fake.webhook_for(w) for w in writes]
    assert [e[0] if e else None for e in events] == ["pull_request_review", "pull_request"]
    review_event = code_events.parse(*events[0])  # type: ignore[misc]
    push_event = code_events.parse(*events[1])  # type: ignore[misc]
    assert isinstance(review_event, code_events.PullRequestReviewEvent)
    assert (review_event.action, review_event.review.commit_id, review_event.sender.login) == ("submitted", head, BOT)
    assert isinstance(push_event, code_events.PullRequestEvent)
    assert (push_event.action, push_event.before, push_event.after) == ("synchronize", head, child)
    assert push_event.pull_request.head.sha == child


def test_unimplemented_fields_are_refused_and_recorded(fake: FakeGitHub, pr: int) -> None:
    status, body = fake.act(BOT, "POST", f"/repos/{REPO}/pulls/{pr}/reviews",
                            {"body": "s", "event": "COMMENT", "comments": [
                                {"path": "src/app.py", "position": 3, "body": "old-style anchor"}]})
    assert status == 422
    assert "position" in body["message"]
    status, _ = fake.act(BOT, "POST", f"/repos/{REPO}/git/refs", {"ref": "refs/heads/x", "sha": "0" * 40, "k": 1})
    assert status == 422
    assert len(fake.unexpected) == 2
    fake._unexpected.clear()


def test_review_commit_must_be_on_the_pr(fake: FakeGitHub, pr: int) -> None:
    gh = gh_for(fake)
    main = gh.rest.git.get_ref("octo", "app", "heads/main").parsed_data.object_.sha
    other = git_api.commit_files(fake, REPO, "elsewhere", {"x": "y"}, "other", "alice", base="main")
    assert main != other
    with pytest.raises(RequestFailed) as exc:
        gh.rest.pulls.create_review("octo", "app", pr, commit_id=other, body="s", event="COMMENT")
    assert refused(exc)[1]["errors"] == [f"Commit id {other} is not part of the pull request"]
