"""Triage: the first orchestration's domain logic (offline planner and the GitHub status comment).

The planner is deterministic and offline: it classifies an issue or comment by keywords and proposes labels.
The model-backed planner of ``orchestrate_task`` lives in ``shared.ai``; triage keeps working without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.chain_view import chain_markdown
from shared.errors import NotFound, RetryLater, StoreError
from shared.loop.breakers import BreakerService, text_fingerprint
from shared.loop.lineage import EffectRecord, LineageService
from shared.loop.marker import find_markers, sign_text
from shared.loop.rules import normalise_text
from shared.platforms.github.client import RequestError, RequestFailed
from shared.platforms.github.pacer import PacerWouldWait, get_pacer
from shared.store.base import Query, safe_id
from shared.telemetry import record_github_write

logger = logging.getLogger(__name__)

_SIGNALS: dict[str, tuple[str, ...]] = {
    "bug": ("bug", "error", "crash", "fail", "exception", "broken", "regression", "traceback", "500"),
    "feature": ("feature", "add ", "support", "would be nice", "request", "enhancement", "proposal"),
    "question": ("how do", "how to", "why ", "question", "?"),
    "docs": ("docs", "documentation", "readme", "typo"),
}


class TriagePlan(BaseModel):
    """What the planner proposes for one issue or comment."""

    kind: str
    signals: list[str]
    labels: list[str]
    summary: str
    planner: str = "offline"


class TriageInput(BaseModel):
    """Input of the triage orchestration (small: a projection of the event plus its lineage)."""

    event_id: str
    event_type: str
    chain_id: str
    depth: int
    repo: str
    number: int
    installation_id: int | None = None
    actor: str | None = None
    actor_kind: str = "human"
    association: str | None = None
    text: str = ""
    #: The answer to a ``/reynolds`` command in the comment (posted instead of a triage).
    reply: str | None = None
    #: Whether the ``/reynolds`` command was carried out (fresh, first time, authorised): ``resume`` acts only then.
    command_executed: bool = False
    #: When the event arrived (the orchestration's duration is measured from it).
    received_at: datetime | None = None


def plan_triage(text: str) -> TriagePlan:
    """Classify ``text`` by keyword signals, deterministically (same text, same plan)."""
    lowered = text.lower()
    scores: dict[str, list[str]] = {}
    for kind, words in _SIGNALS.items():
        hits = [w.strip() for w in words if w in lowered]
        if hits:
            scores[kind] = hits
    if scores:
        kind = max(scores, key=lambda k: (len(scores[k]), -list(_SIGNALS).index(k)))
        signals = scores[kind]
    else:
        kind, signals = "needs-info", []
    labels = [kind] if kind != "needs-info" else ["needs-info"]
    if kind == "needs-info":
        summary = "Reynolds could not tell what this needs yet: a short description of the expected result helps."
    else:
        summary = f"Reynolds triaged this as **{kind}** (signals: {', '.join(signals)})."
    return TriagePlan(kind=kind, signals=signals, labels=labels, summary=summary)


def render_command_reply(reply: str, instance_id: str) -> str:
    """The comment answering a ``/reynolds`` command."""
    return f"### Reynolds · command\n\n{reply}\n\n- Orchestration: `{instance_id}`\n"


def render_triage_comment(plan: TriagePlan, instance_id: str) -> str:
    """The status comment body (the marker is added when it is posted)."""
    labels = ", ".join(f"`{label}`" for label in plan.labels)
    return (
        f"### Reynolds · triage\n\n{plan.summary}\n\n"
        f"- Suggested labels: {labels}\n"
        f"- Planner: {plan.planner}\n"
        f"- Orchestration: `{instance_id}`\n"
    )


GitHubFor = Callable[[int | None], Any]


#: The longest a worker sleeps for the pacer; a longer wait goes back to the orchestration as a durable timer.
MAX_PACER_WAIT_SECONDS = 15.0
#: After a write whose outcome is unknown (timeout, 5xx, reset) found no comment, look once more this much later
#: before writing again: GitHub has been seen storing a comment ~15 s after the client gave up. A commit later
#: than this is caught by ``sweep_late_commits`` (the recovery timer, every 10 min, for ``LATE_SWEEP_SECONDS``).
LATE_COMMIT_GRACE_SECONDS = 90.0
#: How long an effect written after an unknown outcome is watched for the earlier write landing late: GitHub keeps
#: nothing retryable longer than its 3-day delivery window, and the effect ledger keeps the answer as long.
LATE_SWEEP_SECONDS = 3 * 86400


class UnknownOutcome(RetryLater):
    """A write whose outcome is unknown (5xx, timeout, reset): GitHub may have stored it, maybe later."""


def create_comment(github: Any, owner: str, name: str, number: int, body: str,
                   installation: int | str | None = None) -> int:
    """POST an issue comment through the shared write pacer (≤ 80/min, ≤ 500/h, ≥ 1 s apart per installation).

    GitHub's answers become ``RetryLater`` carrying the wait GitHub documents: a primary limit waits until
    ``x-ratelimit-reset``; a secondary limit waits ``retry-after``, or at least 60 s and exponentially longer
    when it comes back (``shared.platforms.github.pacer.github_wait``); the pacer records both for every
    instance. Server errors and timeouts retry after the orchestration's backoff; a pacer wait longer than
    ``MAX_PACER_WAIT_SECONDS`` becomes a durable timer too.
    """
    pacer = get_pacer()
    key = installation if installation is not None else "default"
    try:
        pacer.acquire(key, max_wait=MAX_PACER_WAIT_SECONDS)
    except PacerWouldWait as wait:
        raise RetryLater(wait.wait_seconds, f"GitHub write pacer for installation {key}") from None
    where = f"{owner}/{name}#{number}"
    try:
        comment_id = int(github.rest.issues.create_comment(owner, name, number, body=body).parsed_data.id)
    except RequestFailed as exc:  # RateLimitExceeded is a RequestFailed too
        status = exc.response.status_code
        message = _error_message(exc.response)
        limited = pacer.wait_for_answer(key, status, exc.response.headers, message)
        if limited is not None:
            raise RetryLater(max(limited, 1.0), f"GitHub rate limit ({status}) on a comment to {where}") from None
        if status >= 500:
            raise UnknownOutcome(None, f"GitHub answered {status} to a comment on {where}") from None
        raise
    except RequestError as exc:
        raise UnknownOutcome(None, f"GitHub request for a comment on {where} failed: {type(exc).__name__}") from None
    try:
        pacer.record_success(key)
    except StoreError:  # only the backoff bookkeeping: the comment is posted, never fail it for this
        logger.warning("GitHub write pacer for installation %s: success not recorded (store unavailable)", key)
    record_github_write("comment")
    return comment_id


def _error_message(response: Any) -> str:
    try:
        data = response.json()
    except Exception:  # noqa: BLE001 - an unreadable error body has no message
        return ""
    return str(data.get("message") or "") if isinstance(data, dict) else ""


def _repeat_fingerprint(text: str | None) -> str | None:
    """What repeat-counting compares; commands (``/reynolds …``) are meant to be repeated and never count."""
    if not text or text.lstrip().lower().startswith("/reynolds"):
        return None
    return text_fingerprint(normalise_text(text))


class GitHubReporter:
    """Writes Reynolds' comments through githubkit, each exactly once, each recorded in the effect ledger."""

    def __init__(self, lineage: LineageService, github_for: GitHubFor, *, marker_key: str, bot_login: str,
                 breakers: BreakerService | None = None, explorer_url: str | None = None) -> None:
        self.lineage = lineage
        self.github_for = github_for
        self.marker_key = marker_key
        self.bot_login = bot_login
        self.breakers = breakers
        self.explorer_url = explorer_url

    def post_comment(self, *, key: str, repo: str, number: int, installation_id: int | None, body: str,
                     chain_id: str, event_id: str, depth: int, counterpart: str | None = None,
                     counterpart_text: str | None = None, automated: bool = False,
                     attempt: int | None = None, run: str | None = None) -> EffectRecord:
        """Post ``body`` once per ``key``: a retry after success, or after a crash mid-way, posts nothing new.

        Before a new write the target's and the counterpart's rate breakers are asked; an open breaker
        suppresses the write (recorded as ``suppressed``) and, when it has just opened, one note is left.
        """
        intent = EffectRecord(key=key, platform="github", kind="comment", target=f"{repo}#{number}",
                              chain_id=chain_id, event_id=event_id, depth=depth)
        record, fresh = self.lineage.begin_effect(intent, attempt, run)
        if record.state in ("done", "suppressed"):
            logger.info("effect %s already %s (%s); not posting again", key, record.state, record.resource_id)
            return record
        owner, name = repo.split("/", 1)
        github = self.github_for(installation_id)
        if not fresh:
            found = self._find_posted(github, owner, name, number, event_id)
            if found is not None:
                logger.info("effect %s was posted before a crash (comment %s); recording it", key, found)
                return self.lineage.complete_effect(record, f"comment:{found}", body)
            self._wait_for_late_commit(key)
        # The breaker counts a write once: a retry of the same effect (intent already recorded) was counted.
        if self.breakers is not None and fresh:
            permit = self.breakers.permit(
                platform="github", target=record.target, counterpart=counterpart,
                text_fp=_repeat_fingerprint(counterpart_text),
                now=self.lineage.clock(), automated=automated, depth=depth - 1,
            )
            if not permit.allowed:
                logger.warning("effect %s suppressed: breaker %s is open (%s)", key, permit.key, permit.reason)
                if permit.opened:
                    who = f" answering {counterpart}" if permit.key.endswith(f":{counterpart}") else ""
                    self._post_note(github, owner, name, number, key, record, f"{permit.reason}", who)
                return self.lineage.suppress_effect(record, permit.reason)
        signed = sign_text(self.marker_key, body, chain_id, event_id, depth)
        # Armed before the write, so an unknown outcome is covered even if the store fails right after it;
        # a definite failure (nothing stored) disarms it, so its retry does not wait for nothing.
        self._arm_late_commit_check(key)
        try:
            comment_id = create_comment(github, owner, name, number, signed, installation_id)
        except UnknownOutcome:
            raise
        except Exception:
            self._disarm_late_commit_check(key)
            raise
        logger.info("posted comment %s on %s#%s for event %s (chain %s)", comment_id, repo, number, event_id, chain_id)
        if not fresh:  # an earlier attempt's write may still land, however late: watch for it
            self._watch_late_commit(key, repo, number, installation_id, event_id, comment_id)
        return self.lineage.complete_effect(record, f"comment:{comment_id}", body)

    def _watch_late_commit(self, key: str, repo: str, number: int, installation_id: int | None, event_id: str,
                           comment_id: int) -> None:
        """Record that ``comment_id`` answers ``event_id`` after an earlier attempt of unknown outcome, so the
        sweep removes that attempt's comment should GitHub store it later than the grace period."""
        doc_id = safe_id(f"late-sweep:{key}")
        try:
            self.lineage.store.upsert({"id": doc_id, "pk": doc_id, "kind": "late-commit-sweep", "effect": key,
                                       "repo": repo, "number": number, "installation_id": installation_id,
                                       "event_id": event_id, "comment_id": comment_id,
                                       "until": self.lineage.clock().timestamp() + LATE_SWEEP_SECONDS,
                                       "ttl": LATE_SWEEP_SECONDS + 3600})
        except StoreError:
            logger.warning("effect %s: late-commit watch not recorded (store unavailable)", key)

    def sweep_late_commits(self) -> list[int]:
        """Delete Reynolds' comments that answer a watched event but are not the recorded answer: an attempt whose
        outcome was unknown and that GitHub stored after the retry had posted (any delay inside the watch).
        Returns the comment ids deleted. Run by the recovery timer; a person sees the copy for ≤ 10 min."""
        deleted: list[int] = []
        now = self.lineage.clock().timestamp()
        for doc in self.lineage.store.query(Query(equals={"kind": "late-commit-sweep"})):
            if float(doc.get("until") or 0) < now:
                continue
            owner, name = str(doc["repo"]).split("/", 1)
            github = self.github_for(doc.get("installation_id"))
            keep = int(doc["comment_id"])
            for comment in github.rest.paginate(github.rest.issues.list_comments, owner=owner, repo=name,
                                                issue_number=int(doc["number"]), per_page=100):
                login = comment.user.login if comment.user else None
                if login != self.bot_login or int(comment.id) == keep:
                    continue
                if any(m.valid and m.event_id == doc["event_id"] for m in find_markers(comment.body or "",
                                                                                       self.marker_key)):
                    try:
                        get_pacer().acquire(doc.get("installation_id") or "default", max_wait=MAX_PACER_WAIT_SECONDS)
                        github.rest.issues.delete_comment(owner, name, int(comment.id))
                    except (PacerWouldWait, RequestFailed, RequestError) as exc:  # the next run tries again
                        logger.warning("effect %s: late copy %s not deleted yet (%s)", doc["effect"], comment.id,
                                       type(exc).__name__)
                        continue
                    deleted.append(int(comment.id))
                    logger.warning("effect %s: comment %s on %s#%s landed late, after its retry posted %s; "
                                   "deleted", doc["effect"], comment.id, doc["repo"], doc["number"], keep)
        return deleted

    def _arm_late_commit_check(self, key: str) -> None:
        """A write of ``key`` is about to go out: should its outcome be unknown, the next retry must look for it
        twice, the second time ``LATE_COMMIT_GRACE_SECONDS`` after this write, before writing again. A store
        failure here fails the attempt before the write (retried), never after it."""
        doc_id = safe_id(f"late:{key}")
        look_again_at = self.lineage.clock().timestamp() + LATE_COMMIT_GRACE_SECONDS
        self.lineage.store.upsert({"id": doc_id, "pk": doc_id, "kind": "late-commit-check", "effect": key,
                                   "look_again_at": look_again_at, "ttl": 3 * 86400})

    def _disarm_late_commit_check(self, key: str) -> None:
        """GitHub refused the write (nothing stored): its retry need not wait; a store failure here only costs
        that retry the grace period."""
        doc_id = safe_id(f"late:{key}")
        try:
            self.lineage.store.delete(doc_id, doc_id)
        except StoreError:  # NotFound included
            logger.info("effect %s: late-commit check not disarmed; the retry waits the grace period", key)

    def _wait_for_late_commit(self, key: str) -> None:
        """Called when a retry found no comment: wait (``RetryLater``) until the armed check's time; after it,
        the caller writes again (re-arming the check). Unarmed (GitHub refused the last write): write at once.

        GitHub has been seen storing a comment ~15 s after the client's timeout; a retry comes back within
        seconds, so without this second look it would post a duplicate. A commit later than the grace period
        is the residual window (documented in the README).
        """
        store, doc_id = self.lineage.store, safe_id(f"late:{key}")
        try:
            look_again_at = float(store.read(doc_id, doc_id)["look_again_at"])
        except NotFound:
            return
        now = self.lineage.clock().timestamp()
        if now + 0.5 < look_again_at:  # a durable timer may fire a hair early: no sub-second RetryLater loop
            logger.info("effect %s: no comment found after an unknown outcome; looking again in %.0f s", key,
                        look_again_at - now)
            raise RetryLater(look_again_at - now, f"effect {key}: waiting for a late commit before writing again")

    def _post_note(self, github: Any, owner: str, name: str, number: int, key: str, record: EffectRecord,
                   reason: str, who: str = "") -> None:
        """The one visible note a breaker leaves when it opens (itself an idempotent, recorded effect)."""
        note_key = f"{key}:note"
        intent = EffectRecord(key=note_key, platform="github", kind="note", target=record.target,
                              chain_id=record.chain_id, event_id=record.event_id, depth=record.depth)
        note, fresh = self.lineage.begin_effect(intent)
        if not fresh:
            return
        body = (f"### Reynolds · paused\n\nReynolds stopped{who} on this thread: {reason}. "
                "This looks like a loop between automations. A collaborator can comment `/reynolds resume` "
                f"to let Reynolds answer again.\n\n{chain_markdown(self.explorer_url, record.chain_id)}")
        signed = sign_text(self.marker_key, body, record.chain_id, record.event_id, record.depth)
        self.lineage.complete_effect(note, f"comment:{create_comment(github, owner, name, number, signed)}", body)

    def _find_posted(self, github: Any, owner: str, name: str, number: int, event_id: str) -> int | None:
        """A comment by Reynolds on the issue whose valid marker answers ``event_id`` (crash reconciliation)."""
        for comment in github.rest.paginate(github.rest.issues.list_comments, owner=owner, repo=name,
                                            issue_number=number, per_page=100):
            login = comment.user.login if comment.user else None
            if login != self.bot_login:
                continue
            for marker in find_markers(comment.body or "", self.marker_key):
                if marker.valid and marker.event_id == event_id:
                    return int(comment.id)
        return None
