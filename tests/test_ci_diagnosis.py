"""CI diagnosis (shared/ci): job logs cleaned and cut to their error lines, transient failures told from real ones,
one diagnosis comment per run edited for later attempts; end to end against the fake GitHub's Actions routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from githubkit import GitHub

from shared.ci import diagnosis as dx
from shared.ci.logs import clean, excerpt, render
from tools.fakes.github import FakeGitHub, actions_api, pulls_api, repos_api

T = "2026-03-04T05:06:{:02d}.1234567Z "

# Written for these tests in the shape of a GitHub-hosted job log (timestamps, ANSI colours, groups, markers).
PYTEST_LOG = "\n".join(T.format(i) + line for i, line in enumerate([
    "##[group]Run actions/checkout@v4",
    "Syncing repository: octo/app",
    "##[endgroup]",
    "##[group]Run pytest -q",
    "\x1b[36;1mpytest -q\x1b[0m",
    "........F.....",
    "=================================== FAILURES ===================================",
    "___________________________ test_total_is_rounded ____________________________",
    "    def test_total_is_rounded():",
    ">       assert total([0.1, 0.2]) == 0.3",
    "E       assert 0.30000000000000004 == 0.3",
    "tests/test_cart.py:12: AssertionError",
    "=========================== short test summary info ============================",
    "FAILED tests/test_cart.py::test_total_is_rounded - assert 0.30000000000000004 == 0.3",
    "1 failed, 13 passed in 0.42s",
    "##[endgroup]",
    "##[error]Process completed with exit code 1.",
]))

NPM_TIMEOUT_LOG = "\n".join(T.format(i) + line for i, line in enumerate([
    "##[group]Run npm ci",
    "npm WARN deprecated inflight@1.0.6: This module is not supported",
    "npm ERR! code ETIMEDOUT",
    "npm ERR! errno ETIMEDOUT",
    "npm ERR! network request to https://registry.npmjs.org/left-pad failed, reason: connect ETIMEDOUT 104.16.0.35:443",
    "npm ERR! network This is a problem related to network connectivity.",
    "##[endgroup]",
    "##[error]Process completed with exit code 1.",
]))

DOCKER_503_LOG = "\n".join(T.format(i) + line for i, line in enumerate([
    "##[group]Run docker build .",
    "#4 [internal] load metadata for ghcr.io/octo/base:1.2",
    "#4 ERROR: failed to fetch: unexpected status from HEAD request: 503 Service Unavailable",
    "##[endgroup]",
    "##[error]buildx failed with: ERROR: failed to solve: unexpected status 503 Service Unavailable",
]))

RUNNER_LOST_LOG = "\n".join(T.format(i) + line for i, line in enumerate([
    "##[group]Run make integration",
    "running 40 integration tests",
    "##[error]The runner has received a shutdown signal. This can happen when the runner service is stopped.",
]))

RATE_LIMIT_LOG = T.format(1) + "##[error]API rate limit exceeded for installation ID 1234 (HTTP 403)"

MIXED_LOG = NPM_TIMEOUT_LOG + "\n" + T.format(50) + "FAILED tests/test_x.py::test_y - AssertionError"


def job(id: int, name: str, conclusion: str, steps: list[tuple[str, str]] | None = None) -> dx.Job:
    return dx.Job(id=id, name=name, conclusion=conclusion, html_url=f"https://github.com/octo/app/actions/runs/9/job/{id}",
                  steps=[dx.Step(name=n, number=i + 1, conclusion=c) for i, (n, c) in enumerate(steps or [])])


RUN = dx.Run(id=9, run_attempt=1, name="CI", conclusion="failure", head_sha="abcdef1234567", head_branch="feature",
             html_url="https://github.com/octo/app/actions/runs/9", pull_requests=[5])


def test_clean_strips_timestamps_and_ansi_and_reads_groups() -> None:
    lines = clean(PYTEST_LOG)
    assert lines[0].text == "Syncing repository: octo/app"
    assert lines[0].group == "Run actions/checkout@v4"
    assert all("\x1b" not in x.text and not x.text.startswith("2026-") for x in lines)
    assert lines[1].text == "pytest -q"
    assert lines[1].group == "Run pytest -q"
    assert lines[-1].mark == "error"
    assert lines[-1].text == "Process completed with exit code 1."


def test_excerpt_keeps_the_cause_not_just_the_exit_code() -> None:
    text = render(excerpt(clean(PYTEST_LOG), before=2, after=1))
    assert "E       assert 0.30000000000000004 == 0.3" in text
    assert "FAILED tests/test_cart.py::test_total_is_rounded" in text
    assert "Syncing repository" not in text
    many = "\n".join(f"error: problem {i}" for i in range(200))
    cut = excerpt(clean(many), max_lines=10)
    assert len(cut) <= 10
    assert cut[-1].text == "error: problem 199"  # the last errors win


@pytest.mark.parametrize(("log", "transient", "reason"), [
    (PYTEST_LOG, False, "test failure"),
    (NPM_TIMEOUT_LOG, True, "network timeout"),
    (DOCKER_503_LOG, True, "registry 5xx"),
    (RUNNER_LOST_LOG, True, "runner lost"),
    (RATE_LIMIT_LOG, True, "rate limited"),
    (MIXED_LOG, False, "test failure"),
])
def test_transient_classifier(log: str, transient: bool, reason: str) -> None:
    d = dx.diagnose("octo/app", RUN, [job(1, "build", "failure")], {1: log})
    assert d.classification.transient is transient
    assert reason in d.classification.reasons
    assert d.propose_rerun is transient


def test_no_rerun_after_the_attempt_limit_and_no_log_after_retention() -> None:
    third = RUN.model_copy(update={"run_attempt": dx.MAX_RERUN_ATTEMPTS})
    d = dx.diagnose("octo/app", third, [job(1, "build", "failure")], {1: NPM_TIMEOUT_LOG})
    assert d.classification.transient
    assert not d.propose_rerun
    assert "not proposing another rerun" in dx.comment_body(third, d)
    gone = dx.diagnose("octo/app", RUN, [job(1, "build", "failure", [("Run tests", "failure")])], {1: None})
    assert not gone.jobs[0].log_available
    assert "no longer available" in dx.comment_body(RUN, gone)


def test_comment_is_created_once_then_edited_for_later_attempts() -> None:
    steps = [("Set up job", "success"), ("Run pytest", "failure")]
    d1 = dx.diagnose("octo/app", RUN, [job(1, "test", "failure", steps)], {1: PYTEST_LOG})
    body1 = dx.comment_body(RUN, d1)
    assert body1.startswith(dx.marker("octo/app", 9))
    assert "`Run pytest`" in body1
    assert "a rerun would not help" in body1
    first = dx.comment_action("octo/app", RUN, body1, [(1, "unrelated")], bot_login="reynolds[bot]")
    assert (first.op, first.key) == ("create", "ci-diagnosis:octo/app:9:1")
    run2 = RUN.model_copy(update={"run_attempt": 2})
    body2 = dx.comment_body(run2, d1, earlier=["attempt 1: test failed"])
    comments = [(1, "unrelated"), (77, body1), (78, "quoting: " + dx.marker("octo/app", 9))]
    second = dx.comment_action("octo/app", run2, body2, comments, bot_login="reynolds[bot]",
                               authors={1: "alice", 77: "reynolds[bot]", 78: "alice"})
    assert (second.op, second.comment_id, second.key) == ("edit", 77, "ci-diagnosis:octo/app:9:2")
    assert "Earlier attempts:" in body2


def test_body_is_capped_and_keeps_its_marker() -> None:
    noisy = "\n".join(f"error: {'x' * 500} {i}" for i in range(400))
    d = dx.diagnose("octo/app", RUN, [job(i, f"job{i}", "failure") for i in range(1, 5)],
                    {i: noisy for i in range(1, 5)})
    body = dx.comment_body(RUN, d)
    assert len(body) <= dx.MAX_BODY
    assert body.startswith(dx.marker("octo/app", 9))


def test_target_pr_default_branch_or_none() -> None:
    assert dx.target_for(RUN, "main") == dx.Target(kind="pull_request", number=5)
    on_main = RUN.model_copy(update={"pull_requests": [], "head_branch": "main"})
    assert dx.target_for(on_main, "main").kind == "tracking_issue"
    other = RUN.model_copy(update={"pull_requests": [], "head_branch": "topic"})
    assert dx.target_for(other, "main").kind == "none"


# --------------------------------------------------------------------------- against the fake, via githubkit
@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as gh:
        gh.add_repo("octo/app")
        gh.add_user("reynolds[bot]", type="Bot", token="ghs_r")
        repos_api.add_file(gh, "octo/app", "app.py", "print(1)\n")
        pulls_api.add_pull(gh, "octo/app", 5, head="feature", files={"app.py": "print(2)\n"})
        yield gh
        gh.assert_no_unexpected()


def _diagnose_through(gh: GitHub[Any], run_id: int) -> tuple[dx.Run, dx.Diagnosis]:
    raw: Any = gh.rest.actions.get_workflow_run("octo", "app", run_id).json()
    run = dx.Run.model_validate({**raw, "pull_requests": [p["number"] for p in raw["pull_requests"] or []]})
    jobs = [dx.Job.model_validate(j) for j in gh.rest.actions.list_jobs_for_workflow_run_attempt(
        "octo", "app", run_id, run.run_attempt).json()["jobs"]]
    logs = {j.id: gh.rest.actions.download_job_logs_for_workflow_run("octo", "app", j.id).text
            for j in jobs if j.conclusion == "failure"}
    return run, dx.diagnose("octo/app", run, jobs, logs)


def test_a_failed_run_attempted_twice_gets_one_comment_edited(fake: FakeGitHub) -> None:
    actions_api.add_run(fake, "octo/app", 99, pull_request=5, jobs=[
        {"name": "lint", "conclusion": "success", "log": "ok"},
        {"name": "test", "conclusion": "failure", "log": NPM_TIMEOUT_LOG}])
    gh = GitHub("ghs_r", base_url=fake.base_url, auto_retry=False, timeout=5, http_cache=False)
    run, d = _diagnose_through(gh, 99)
    assert d.propose_rerun
    assert [j.job for j in d.jobs] == ["test"]
    action = dx.comment_action("octo/app", run, dx.comment_body(run, d), [], bot_login="reynolds[bot]")
    posted = gh.rest.issues.create_comment("octo", "app", 5, body=action.body).parsed_data
    # the rerun (after approval), which fails for real this time
    gh.rest.actions.re_run_workflow_failed_jobs("octo", "app", 99)
    actions_api.complete_attempt(fake, 99, {"test": {"conclusion": "failure", "log": PYTEST_LOG}})
    run2, d2 = _diagnose_through(gh, 99)
    assert run2.run_attempt == 2
    assert not d2.propose_rerun
    listed: Any = gh.rest.issues.list_comments("octo", "app", 5).parsed_data
    existing = [(c.id, c.body or "") for c in listed]
    again = dx.comment_action("octo/app", run2, dx.comment_body(run2, d2), existing, bot_login="reynolds[bot]",
                              authors={posted.id: "reynolds[bot]"})
    assert (again.op, again.comment_id) == ("edit", posted.id)
    gh.rest.issues.update_comment("octo", "app", posted.id, body=again.body)
    bodies = [c["body"] for c in fake.comments("octo/app", 5)]
    assert len(bodies) == 1
    assert "attempt 2" in bodies[0]


def test_error_groups_and_attempt_lines() -> None:
    d = dx.diagnose("octo/app", RUN, [job(1, "test", "failure")], {1: PYTEST_LOG})
    assert d.jobs[0].error_groups == ["Run pytest -q"]
    assert dx.attempt_line(d) == "attempt 1: test failed — failure (test failure)"
    t = dx.diagnose("octo/app", RUN, [job(1, "deps", "failure")], {1: NPM_TIMEOUT_LOG})
    assert dx.attempt_line(t) == "attempt 1: deps failed — transient (network timeout)"
