"""Diagnosing a failed workflow run (pure): failing jobs and steps, the relevant log lines, whether the failure
looks transient (then a rerun of the failed jobs is proposed), and the one diagnosis comment per run — created
for the first attempt, edited in place for later ones.

Inputs are the shapes of ``actions/get-workflow-run``, ``actions/list-jobs-for-workflow-run-attempt`` (each job's
``steps`` with ``conclusion``) and the job logs (:mod:`shared.ci.logs`). The comment carries a hidden marker
``<!-- reynolds:ci-diagnosis repo#run -->`` so a later attempt finds it among the issue's comments; the effect
ledger's key is per (run id, attempt), so a redelivered ``workflow_run.completed`` writes nothing twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.ci.logs import LogLine, clean, excerpt, is_error, render

MAX_BODY = 65_536
#: Attempts after which a transient-looking failure is no longer rerun automatically (a person looks instead).
MAX_RERUN_ATTEMPTS = 3
_FAILED = ("failure", "timed_out", "cancelled", "startup_failure")

#: (reason, pattern): the failure is the infrastructure's, not the change's; a rerun may pass.
TRANSIENT: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(p, re.IGNORECASE)) for name, p in (
    ("network timeout", r"ETIMEDOUT|ECONNRESET|ECONNREFUSED|EAI_AGAIN|connection (?:timed out|reset|refused)"
                        r"|read timed out|timed out while|TLS handshake timeout|i/o timeout|socket hang up"
                        r"|Could not resolve host|Temporary failure in name resolution|network is unreachable"),
    ("runner lost", r"runner has received a shutdown signal|lost communication with the server"
                    r"|The hosted runner encountered an error"),
    ("registry 5xx", r"\b50[0234] (?:Bad Gateway|Service Unavailable|Gateway Time-?out|Internal Server Error)\b"
                     r"|\b(?:HTTP|status|returned)\D{0,12}5\d\d\b"),
    ("rate limited", r"\b429\b|too many requests|toomanyrequests|rate limit(?:ed| exceeded)"
                     r"|secondary rate limit"),
))
#: Signs the change itself is at fault; they outweigh any transient sign.
DETERMINISTIC: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(p)) for name, p in (
    ("test failure", r"^FAILED |\bAssertionError\b|^E\s{2,}assert|\d+ failed(?:,|$| in)|Tests?:\s+\d+ failed"),
    ("compile error", r"\berror\[E\d+\]|\berror TS\d+|SyntaxError|\bcannot find symbol\b|undefined reference"),
    ("lint error", r"\bFound \d+ errors?\b|\b\d+ problems? \(\d+ errors?"),
    ("type error", r"\berror: .* \[[a-z-]+\]$|TypeError:"),
))


class Step(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    number: int
    conclusion: str | None = None


class Job(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int
    name: str
    conclusion: str | None = None
    html_url: str | None = None
    steps: list[Step] = []


class Run(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int
    run_attempt: int = 1
    name: str | None = None
    conclusion: str | None = None
    head_sha: str
    head_branch: str | None = None
    html_url: str
    pull_requests: list[int] = []


class JobDiagnosis(BaseModel):
    job: str
    job_url: str | None = None
    failed_steps: list[str]
    #: The ``##[group]`` names (the step commands) the error lines sit in, when the log has them.
    error_groups: list[str] = []
    excerpt: str
    log_available: bool


class Classification(BaseModel):
    transient: bool
    reasons: list[str]


class Diagnosis(BaseModel):
    repo: str
    run_id: int
    attempt: int
    jobs: list[JobDiagnosis]
    classification: Classification
    propose_rerun: bool


def classify(lines: Iterable[str]) -> Classification:
    """Transient when some line shows an infrastructure failure and none shows the change failing."""
    text = list(lines)
    deterministic = sorted({name for name, p in DETERMINISTIC for line in text if p.search(line)})
    transient = sorted({name for name, p in TRANSIENT for line in text if p.search(line)})
    if deterministic:
        return Classification(transient=False, reasons=deterministic)
    return Classification(transient=bool(transient), reasons=transient)


def diagnose(repo: str, run: Run, jobs: Iterable[Job], logs: Mapping[int, str | None]) -> Diagnosis:
    """Failing jobs with their failing steps and log excerpts; ``logs`` maps a job id to its log text (None when
    GitHub no longer has it: 404 after retention)."""
    out: list[JobDiagnosis] = []
    signal: list[str] = []
    for job in jobs:
        if job.conclusion not in _FAILED:
            continue
        raw = logs.get(job.id)
        lines: list[LogLine] = clean(raw) if raw else []
        cut = excerpt(lines)
        signal.extend(line.text for line in lines if is_error(line) or line.mark == "error")
        # a transient sign is often an ordinary line (a retry warning), so scan the excerpt's context too
        signal.extend(line.text for line in cut)
        failed = [s.name for s in job.steps if s.conclusion in _FAILED]
        groups = list(dict.fromkeys(line.group for line in cut if line.group and is_error(line)))
        out.append(JobDiagnosis(job=job.name, job_url=job.html_url, failed_steps=failed, error_groups=groups,
                                excerpt=render(cut), log_available=raw is not None))
    verdict = classify(signal)
    return Diagnosis(repo=repo, run_id=run.id, attempt=run.run_attempt, jobs=out, classification=verdict,
                     propose_rerun=verdict.transient and run.run_attempt < MAX_RERUN_ATTEMPTS)


def attempt_line(d: Diagnosis) -> str:
    """One line summing up an attempt, for the "Earlier attempts" list of a later attempt's comment."""
    jobs = ", ".join(j.job for j in d.jobs) or "no job"
    kind = "transient" if d.classification.transient else "failure"
    why = f" ({', '.join(d.classification.reasons)})" if d.classification.reasons else ""
    return f"attempt {d.attempt}: {jobs} failed — {kind}{why}"


def diagnosis_key(repo: str, run_id: int, attempt: int) -> str:
    """The effect ledger's key of the diagnosis write for one attempt."""
    return f"ci-diagnosis:{repo.lower()}:{run_id}:{attempt}"


def marker(repo: str, run_id: int) -> str:
    """The hidden line that finds the run's comment again (per run, not per attempt: later attempts edit it)."""
    return f"<!-- reynolds:ci-diagnosis {repo.lower()}#{run_id} -->"


def _fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text}\n{fence}"


def comment_body(run: Run, d: Diagnosis, *, earlier: Iterable[str] = ()) -> str:
    """The diagnosis comment for the latest attempt (``earlier``: one line per earlier attempt), ≤ 65,536 chars."""
    title = run.name or "Workflow"
    head = [marker(d.repo, d.run_id),
            f"### CI diagnosis: {title} failed (attempt {d.attempt})",
            f"Run [{d.run_id}]({run.html_url}) on `{run.head_sha[:7]}`"
            + (f" (`{run.head_branch}`)" if run.head_branch else "") + "."]
    if d.classification.transient:
        why = ", ".join(d.classification.reasons)
        head.append(f"This looks transient ({why})." + (
            " I propose re-running the failed jobs." if d.propose_rerun else
            f" It failed {d.attempt} times; I am not proposing another rerun."))
    elif d.classification.reasons:
        head.append(f"This looks like a real failure ({', '.join(d.classification.reasons)}); a rerun would not help.")
    earlier_lines = list(earlier)
    tail = ["", "Earlier attempts:", *[f"- {line}" for line in earlier_lines]] if earlier_lines else []
    parts: list[str] = []
    for job in d.jobs:
        steps = ", ".join(f"`{s}`" for s in job.failed_steps) or "no step reported failing"
        name = f"[{job.job}]({job.job_url})" if job.job_url else job.job
        if not job.log_available:
            parts.append(f"**{name}** — failing: {steps}. The log is no longer available.")
        else:
            parts.append(f"**{name}** — failing: {steps}\n\n{_fence(job.excerpt or '(no error lines found)')}")
    fixed = "\n\n".join(head) + "\n".join(tail)
    body = "\n\n".join(head) + "\n\n" + "\n\n".join(parts) + ("\n" + "\n".join(tail) if tail else "")
    if len(body) <= MAX_BODY:
        return body
    # Too long: shorten the excerpts (their last lines matter most), never the header or the marker.
    room = max(0, MAX_BODY - len(fixed) - 200 * max(1, len(d.jobs)) - 100)
    share = room // max(1, len(d.jobs))
    short = [p if len(p) <= share else "…" + p[-share:] for p in parts]
    return ("\n\n".join(head) + "\n\n" + "\n\n".join(short) + ("\n" + "\n".join(tail) if tail else ""))[:MAX_BODY]


class CommentAction(BaseModel):
    """Create a comment, or edit ``comment_id`` in place (a later attempt of the same run)."""

    key: str
    op: Literal["create", "edit"]
    comment_id: int | None = None
    body: str


def comment_action(repo: str, run: Run, body: str, existing: Iterable[tuple[int, str]], *,
                   bot_login: str, authors: Mapping[int, str] | None = None) -> CommentAction:
    """Which write the diagnosis is: ``existing`` is the target's comments as (id, body) — with ``authors`` (id →
    login) only Reynolds' own comment carrying the run's marker is edited, never someone else's quote of it."""
    key = diagnosis_key(repo, run.id, run.run_attempt)
    mark = marker(repo, run.id)
    for comment_id, text in existing:
        if mark in text and (authors is None or authors.get(comment_id, "").lower() == bot_login.lower()):
            return CommentAction(key=key, op="edit", comment_id=comment_id, body=body)
    return CommentAction(key=key, op="create", body=body)


class Target(BaseModel):
    """Where the diagnosis goes: the PR, or a tracking issue for the default branch (found by ``title``)."""

    kind: Literal["pull_request", "tracking_issue", "none"]
    number: int | None = None
    title: str | None = None


def target_for(run: Run, default_branch: str) -> Target:
    """A run of a pull request reports there; one of the default branch on a tracking issue; others nowhere."""
    if run.pull_requests:
        return Target(kind="pull_request", number=run.pull_requests[0])
    if run.head_branch == default_branch:
        return Target(kind="tracking_issue", title=f"CI failing on {default_branch}: {run.name or 'workflow'}")
    return Target(kind="none")
