"""Typed writers: execute one approved proposal on GitHub exactly once, and say what happened.

For each proposal (``execute``):

1. **stale** — the stored content no longer has the stored hash, or the approval named another hash: nothing
   is written, nothing is recorded; the person is asked again.
2. The effect ledger (``shared.loop``'s ``begin_effect``) records the intent under the proposal's idempotency
   key (task instance + proposal id + hash, :func:`shared.act.proposals.idempotency_key`), claimed by the
   activity attempt. A key already ``done`` answers **done** without a call; ``suppressed`` answers
   **refused** with the reason stored then.
3. A key found in state ``intent`` means an earlier attempt may have written and crashed before recording it:
   the writer *looks* before writing again — a comment or issue carrying the proposal's tag
   (``<!-- reynolds:proposal key=… -->``, next to the signed lineage marker) by Reynolds' login; labels
   already on the issue; a workflow run whose attempt number moved past the one recorded before the re-run.
   When the earlier write's outcome was unknown (5xx, timeout) and nothing is found, the writer looks once
   more :data:`LATE_COMMIT_GRACE_SECONDS` after that write before writing again (``RetryLater`` until then):
   GitHub has been seen storing a write ~15 s after the client gave up (the same rule as the triage reporter;
   a commit later than the grace is the residual window).
4. The write goes through the shared GitHub write pacer (``shared.platforms.github.pacer``: ≥ 1 s apart,
   80/min, 500/h per installation; a longer wait becomes ``RetryLater`` for a durable timer). GitHub's rate
   limits become ``RetryLater`` with GitHub's wait; 5xx and transport errors are an unknown outcome
   (``RetryLater``: the retry reconciles first); any other 4xx (403, 404, 410 issues disabled, 422
   validation) is **refused**: recorded as ``suppressed`` with GitHub's message, never retried.
5. The resource is recorded (``complete_effect``), which also files it as the loop guard's evidence; the
   outcome is **done**.

Every text written carries Reynolds' signed lineage marker (``shared.loop.marker.sign_text``), so the loop
guard sees its own effects as it does today. ``post_channel_message`` and ``create_calendar_event`` are not
executed here (Graph does not let an application post channel messages; the Teams issue brings the bot
writer): they answer **refused** with that reason, recorded, so they are not tried again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from shared.act.proposals import (
    AddLabels,
    CreateComment,
    CreateIssue,
    Proposal,
    RerunFailedJobs,
    idempotency_key,
)
from shared.errors import NotFound, RetryLater, StoreError
from shared.loop.ledger import EffectRecord, doc_id
from shared.loop.marker import sign_text
from shared.platforms.github import writes
from shared.platforms.github.client import RequestError, RequestFailed
from shared.platforms.github.pacer import GitHubPacer, PacerWouldWait, get_pacer, github_wait
from shared.store.base import DocumentStore, safe_id
from shared.telemetry import record_github_write

logger = logging.getLogger(__name__)

#: The longest a worker sleeps for the pacer; longer becomes a durable timer (``RetryLater``).
MAX_PACER_WAIT_SECONDS = 15.0
MAX_REASON_CHARS = 300
#: After an unknown outcome found nothing, look again this much later before writing again.
LATE_COMMIT_GRACE_SECONDS = 90.0

Status = Literal["done", "refused", "stale"]


class Outcome(BaseModel):
    """What happened to one proposal (the status comment shows it)."""

    model_config = ConfigDict(frozen=True)

    proposal_id: str
    status: Status
    key: str
    #: The written resource (``comment:<id>``, ``issue:<repo>#<n>``, ``labels:…``, ``run:…``).
    resource: str | None = None
    reason: str | None = None
    #: GitHub's status code when GitHub refused the write.
    http_status: int | None = None
    #: True when the write was found after a crash rather than made by this call.
    reconciled: bool = False


class UnknownOutcome(RetryLater):
    """A write whose outcome is unknown (5xx, timeout, reset): the retry looks for it before writing again."""


class GitHubRefused(Exception):  # noqa: N818 - an answer, not a fault of Reynolds
    """GitHub refused the write for good (4xx other than a rate limit): status and GitHub's own message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"GitHub answered {status}: {message}")
        self.status = status
        self.message = message


class EffectLedgerPort(Protocol):
    """The effect ledger as ``shared.loop.lineage.LineageService`` exposes it (used, never changed)."""

    store: DocumentStore
    clock: Callable[[], datetime]

    def begin_effect(self, record: EffectRecord, attempt: int | None = None,
                     run: str | None = None) -> tuple[EffectRecord, bool]: ...

    def complete_effect(self, record: EffectRecord, resource_id: str, text: str) -> EffectRecord: ...

    def suppress_effect(self, record: EffectRecord, reason: str) -> EffectRecord: ...


def proposal_tag(key: str) -> str:
    """The hidden tag that lets a retry find the text this proposal wrote (a digest: no id leaks into it)."""
    return f"<!-- reynolds:proposal key={hashlib.sha256(key.encode()).hexdigest()[:24]} -->"


def _message(exc: RequestFailed) -> str:
    try:
        data = exc.response.json()
    except Exception:  # noqa: BLE001 - an unreadable error body has no message
        return ""
    if not isinstance(data, dict):
        return ""
    message = str(data.get("message") or "")
    details = [str(e.get("message") or e.get("code") or "") for e in data.get("errors") or [] if isinstance(e, dict)]
    details = [d for d in details if d]
    return (f"{message} ({'; '.join(details)})" if details else message)[:MAX_REASON_CHARS]


class ProposalWriter:
    """Executes approved proposals through githubkit, each once per idempotency key; see the module docstring."""

    def __init__(self, ledger: EffectLedgerPort, github_for_repo: Callable[[str], Any], *, marker_key: str,
                 bot_login: str, pacer: GitHubPacer | None = None) -> None:
        self.ledger = ledger
        self.github_for_repo = github_for_repo
        self.marker_key = marker_key
        self.bot_login = bot_login
        self.pacer = pacer

    # -- the interface --------------------------------------------------------------------------------
    def execute(self, proposal: Proposal, *, approved_hash: str | None, instance_id: str, chain_id: str,
                event_id: str, depth: int, installation_id: int | None = None, attempt: int | None = None,
                run: str | None = None) -> Outcome:
        """Write ``proposal`` once (``approved_hash`` None: the policy's ``auto``); the outcome.

        ``event_id``/``chain_id``/``depth`` go into the lineage marker (the event this write answers: the
        approval, or the task's event for ``auto``). Raises ``RetryLater`` (pacer, rate limit, unknown outcome,
        a concurrent attempt holding the claim) for the orchestration's durable retry.
        """
        key = idempotency_key(instance_id, proposal)
        if not proposal.verify():
            return Outcome(proposal_id=proposal.id, status="stale", key=key,
                           reason="the stored proposal does not match its hash")
        if approved_hash is not None and not proposal.hash.startswith(approved_hash):
            return Outcome(proposal_id=proposal.id, status="stale", key=key,
                           reason="changed since it was approved: approve it again")
        content = proposal.typed()
        kind = {"create_issue": "issue", "add_labels": "label", "rerun_failed_jobs": "rerun"}.get(proposal.tool,
                                                                                                 "comment")
        intent = EffectRecord(key=key, platform="github", kind=kind, target=proposal.target, chain_id=chain_id,
                              event_id=event_id, depth=depth)
        if proposal.tool in ("post_channel_message", "create_calendar_event"):
            kind = "teams" if proposal.tool == "post_channel_message" else "calendar"
            intent = EffectRecord(key=key, platform="graph", kind=kind, target=proposal.target, chain_id=chain_id,
                                  event_id=event_id, depth=depth)
        record, fresh = self.ledger.begin_effect(intent, attempt, run)
        if record.state == "done":
            return Outcome(proposal_id=proposal.id, status="done", key=key, resource=record.resource_id)
        if record.state == "suppressed":
            return Outcome(proposal_id=proposal.id, status="refused", key=key, reason=self._stored_reason(key))
        try:
            if isinstance(content, CreateComment):
                return self._comment(proposal, content, record, fresh, installation_id)
            if isinstance(content, CreateIssue):
                return self._issue(proposal, content, record, fresh, installation_id)
            if isinstance(content, AddLabels):
                return self._labels(proposal, content, record, fresh, installation_id)
            if isinstance(content, RerunFailedJobs):
                return self._rerun(proposal, content, record, fresh, installation_id)
        except GitHubRefused as refused:
            reason = f"GitHub answered {refused.status}: {refused.message}"[:MAX_REASON_CHARS]
            self.ledger.suppress_effect(record, reason)
            logger.warning("proposal %s (%s) refused by GitHub: %s", proposal.id, key, reason)
            return Outcome(proposal_id=proposal.id, status="refused", key=key, reason=reason,
                           http_status=refused.status)
        reason = f"{proposal.tool} is not executed by Reynolds yet (it needs the Teams/Graph writer)"
        self.ledger.suppress_effect(record, reason)
        return Outcome(proposal_id=proposal.id, status="refused", key=key, reason=reason)

    # -- one writer per tool --------------------------------------------------------------------------
    def _signed(self, text: str, record: EffectRecord) -> str:
        return sign_text(self.marker_key, f"{text}\n\n{proposal_tag(record.key)}", record.chain_id,
                         record.event_id, record.depth)

    def _comment(self, proposal: Proposal, content: CreateComment, record: EffectRecord, fresh: bool,
                 installation_id: int | None) -> Outcome:
        github = self.github_for_repo(content.repo)
        if not fresh:
            found = writes.find_comment(github, content.repo, content.number, self.bot_login,
                                        proposal_tag(record.key))
            if found is not None:
                return self._done(proposal, record, f"comment:{found}", content.body, reconciled=True)
            self._wait_for_late_commit(record.key)
        body = self._signed(content.body, record)
        comment_id = self._paced(installation_id, f"a comment on {proposal.target}", record.key,
                                 lambda: writes.create_comment(github, content.repo, content.number, body))
        record_github_write("comment")
        return self._done(proposal, record, f"comment:{comment_id}", content.body)

    def _issue(self, proposal: Proposal, content: CreateIssue, record: EffectRecord, fresh: bool,
               installation_id: int | None) -> Outcome:
        github = self.github_for_repo(content.repo)
        text = f"{content.title}\n\n{content.body}".strip()
        if not fresh:
            found = writes.find_issue(github, content.repo, self.bot_login, proposal_tag(record.key))
            if found is not None:
                return self._done(proposal, record, f"issue:{content.repo}#{found[0]}", text, reconciled=True)
            self._wait_for_late_commit(record.key)
        body = self._signed(content.body, record)
        number, _ = self._paced(installation_id, f"an issue in {content.repo}", record.key,
                                lambda: writes.create_issue(github, content.repo, content.title, body))
        record_github_write("issue")
        return self._done(proposal, record, f"issue:{content.repo}#{number}", text)

    def _labels(self, proposal: Proposal, content: AddLabels, record: EffectRecord, fresh: bool,
                installation_id: int | None) -> Outcome:
        # Adding a label twice changes nothing on GitHub, but it is a second write request (and a second
        # webhook only when the label was removed in between): look first, always.
        github = self.github_for_repo(content.repo)
        resource = f"labels:{proposal.target}:{proposal.hash[:16]}"
        present = {name.lower() for name in self._read(lambda: writes.issue_labels(github, content.repo,
                                                                                   content.number))}
        missing = [label for label in content.labels if label.lower() not in present]
        if not missing:
            return self._done(proposal, record, resource, ", ".join(content.labels), reconciled=True)
        if not fresh:
            self._wait_for_late_commit(record.key)
        self._paced(installation_id, f"labels on {proposal.target}", record.key,
                    lambda: writes.add_labels(github, content.repo, content.number, missing))
        record_github_write("label")
        return self._done(proposal, record, resource, ", ".join(content.labels))

    def _rerun(self, proposal: Proposal, content: RerunFailedJobs, record: EffectRecord, fresh: bool,
               installation_id: int | None) -> Outcome:
        github = self.github_for_repo(content.repo)
        before_id = safe_id(f"act-before:{record.key}")
        store = self.ledger.store
        before: int | None = None
        if not fresh:
            try:
                before = int(store.read(before_id, before_id)["run_attempt"])
            except NotFound:
                before = None
        current = self._read(lambda: writes.run_attempt(github, content.repo, content.run_id))
        if before is not None and current > before:
            return self._done(proposal, record, f"run:{proposal.target}:attempt{current}", "", reconciled=True)
        if before is None:
            # Written before the re-run, so a retry can tell "re-run happened" (attempt moved) from "not yet".
            store.upsert({"id": before_id, "pk": before_id, "kind": "act-before", "run_attempt": current,
                          "ttl": 7 * 86400})
        else:
            self._wait_for_late_commit(record.key)
        self._paced(installation_id, f"a re-run of {proposal.target}", record.key,
                    lambda: writes.rerun_failed_jobs(github, content.repo, content.run_id))
        record_github_write("rerun")
        return self._done(proposal, record, f"run:{proposal.target}:attempt{current + 1}", "")

    # -- helpers --------------------------------------------------------------------------------------
    def _done(self, proposal: Proposal, record: EffectRecord, resource: str, text: str, *,
              reconciled: bool = False) -> Outcome:
        self.ledger.complete_effect(record, resource, text)
        logger.info("proposal %s written as %s (%s)%s", proposal.id, resource, record.key,
                    " (found after a crash)" if reconciled else "")
        return Outcome(proposal_id=proposal.id, status="done", key=record.key, resource=resource,
                       reconciled=reconciled)

    def _stored_reason(self, key: str) -> str:
        ident = doc_id("fx", key)
        try:
            return str(self.ledger.store.read(ident, ident).get("reason") or "refused earlier")
        except StoreError:
            return "refused earlier"

    def _read(self, call: Callable[[], Any]) -> Any:
        """A read: GitHub's refusal is final for this proposal, an outage is retried."""
        try:
            return call()
        except RequestFailed as exc:
            status = exc.response.status_code
            limit, wait = github_wait(status, exc.response.headers, _message(exc))
            if limit is None and 400 <= status < 500:
                raise GitHubRefused(status, _message(exc) or "refused") from None
            if limit == "primary" and wait is not None:
                wait = None  # a reset time, not a wait: the orchestration's backoff applies
            raise RetryLater(wait, f"GitHub answered {status} to a read") from None
        except RequestError as exc:
            raise RetryLater(None, f"GitHub read failed: {type(exc).__name__}") from None

    def _pacer(self) -> GitHubPacer:
        return self.pacer or get_pacer()

    # -- late commits (see the module docstring, point 3) ----------------------------------------------
    def _late_id(self, effect_key: str) -> str:
        return safe_id(f"act-late:{effect_key}")

    def _arm_late_commit_check(self, effect_key: str) -> None:
        """Before a write: should its outcome be unknown, the retry must look again after the grace period. A
        store failure here fails the attempt before the write (retried), never after it."""
        ident = self._late_id(effect_key)
        look_again_at = self.ledger.clock().timestamp() + LATE_COMMIT_GRACE_SECONDS
        self.ledger.store.upsert({"id": ident, "pk": ident, "kind": "act-late-check", "effect": effect_key,
                                  "look_again_at": look_again_at, "ttl": 3 * 86400})

    def _disarm_late_commit_check(self, effect_key: str) -> None:
        """GitHub answered for sure (stored nothing): the retry need not wait."""
        ident = self._late_id(effect_key)
        try:
            self.ledger.store.delete(ident, ident)
        except StoreError:  # NotFound included: only costs the retry the grace period
            logger.info("effect %s: late-commit check not disarmed", effect_key)

    def _wait_for_late_commit(self, effect_key: str) -> None:
        """A retry found nothing: wait (``RetryLater``) until the armed check's time; unarmed, write at once."""
        ident = self._late_id(effect_key)
        try:
            look_again_at = float(self.ledger.store.read(ident, ident)["look_again_at"])
        except NotFound:
            return
        now = self.ledger.clock().timestamp()
        if now + 0.5 < look_again_at:  # a durable timer may fire a hair early: no sub-second RetryLater loop
            raise RetryLater(look_again_at - now, f"effect {effect_key}: waiting for a late commit before writing "
                                                  "again")

    def _paced(self, installation_id: int | None, what: str, effect_key: str, call: Callable[[], Any]) -> Any:
        pacer = self._pacer()
        key = installation_id if installation_id is not None else "default"
        try:
            pacer.acquire(key, max_wait=MAX_PACER_WAIT_SECONDS)
        except PacerWouldWait as wait:
            raise RetryLater(wait.wait_seconds, f"GitHub write pacer for installation {key}") from None
        self._arm_late_commit_check(effect_key)
        try:
            result = call()
        except RequestFailed as exc:  # RateLimitExceeded is a RequestFailed too
            status = exc.response.status_code
            message = _message(exc)
            if status >= 500:
                raise UnknownOutcome(None, f"GitHub answered {status} to {what}") from None
            self._disarm_late_commit_check(effect_key)
            limited = pacer.wait_for_answer(key, status, exc.response.headers, message)
            if limited is not None:
                raise RetryLater(max(limited, 1.0), f"GitHub rate limit ({status}) on {what}") from None
            raise GitHubRefused(status, message or "refused") from None
        except RequestError as exc:
            raise UnknownOutcome(None, f"GitHub request for {what} failed: {type(exc).__name__}") from None
        try:
            pacer.record_success(key)
        except StoreError:  # only the backoff bookkeeping: the write happened, never fail it for this
            logger.warning("GitHub write pacer for installation %s: success not recorded", key)
        return result
