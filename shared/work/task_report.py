"""The one status comment Reynolds keeps per orchestration, its labels and its tracking issue, on GitHub.

One status comment per orchestration, created once (effect-ledger key ``{instance}:status``) and edited in place
afterwards, plus the exact ``reynolds:*`` label set. Every write goes through the effect ledger (intent before the
call, resource after it) and the per-process :class:`GitHubPacer`. A task that is not tied to an issue gets a
tracking issue in ``REYNOLDS_TRACKING_REPO`` (created with its first labels, so a run costs at most: issue,
comment, one edit per later report, one label change per later report).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.ai.safety import redact_secrets, secret_values
from shared.chain_view import explorer_url
from shared.errors import IncomingRequestError, NotFound
from shared.loop.lineage import EffectRecord, new_chain_id
from shared.loop.marker import sign_text
from shared.names import subtask_instance_id
from shared.platforms.github.client import RequestFailed
from shared.platforms.github.pacer import GitHubPacer, get_pacer
from shared.services import Services
from shared.store.base import Query, safe_id, update_document
from shared.telemetry import record_github_write, record_orchestration
from shared.work.status_report import MAX_COMMENT_CHARS, ReportPhase, escape_content, render_status_comment
from shared.work.tasks import SubtaskState, TaskLineage
from shared.work.wisdom import get_reynolds_wisdom

logger = logging.getLogger(__name__)

#: How long an activity may wait for a GitHub write slot before it gives up (the report is best effort).
MAX_WRITE_WAIT_SECONDS = 15.0
TASK_DOC_TTL_SECONDS = 30 * 86400
LABEL_PREFIX = "reynolds:"
_TRACKING_ISSUE = re.compile(
    r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100})#(?P<number>[1-9]\d{0,9})$"
)


class ReportPayload(TaskLineage):
    """Input of ``report_status_activity``."""

    model_config = ConfigDict(extra="ignore")

    instance_id: str
    #: The orchestration's run (a restart under the same id is a new run); reports of one run are ordered.
    run: str = Field("", max_length=40)
    idempotency_key: str
    sequence: int = Field(ge=1, le=3)
    final: bool
    phase: ReportPhase
    title: str
    states: dict[str, SubtaskState] = Field(default_factory=dict)
    outcomes: list[dict[str, Any]] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    error: str | None = None


class ReportResult(BaseModel):
    """What ``report_status_activity`` returns (the engine ignores it; logs and tests read it)."""

    tracking_issue: str | None = None
    comment_id: int | None = None
    created: bool = False
    edited: bool = False
    labels_changed: bool = False
    skipped: str | None = None


def parse_tracking_issue(value: str) -> tuple[str, int]:
    """``owner/repo#N`` → (repo, N); raises ``IncomingRequestError`` (422) on anything else."""
    match = _TRACKING_ISSUE.match(value or "")
    if match is None:
        raise IncomingRequestError(f"tracking issue {value!r} is not of the form owner/repo#number", 422)
    return match["repo"], int(match["number"])


def github_for(services: Services, repo: str | None) -> Any:
    """The githubkit client for ``repo`` (built on first use from the settings)."""
    if services.github is None:
        from shared.platforms.github.client import GitHubClients

        services.github = GitHubClients(services.settings)
    return services.github.for_repo(repo)


class TaskReporter:
    """Status comments, labels and tracking issues of orchestrations, over one ``Services`` container."""

    def __init__(self, services: Services, *, pacer: GitHubPacer | None = None) -> None:
        self.services = services
        self.settings = services.settings
        self.store = services.store
        self.pacer = pacer or get_pacer()

    def report(self, payload: ReportPayload) -> ReportResult:
        """Write the status comment and labels for one report (idempotent; see the module docstring)."""
        started_at = self._remember_task(payload)
        if payload.final:
            record_orchestration("orchestrate_task", payload.phase.value,
                                 self.services.clock().timestamp() - started_at)
        event_id = payload.event_id or payload.instance_id
        chain_id = payload.chain_id or new_chain_id(event_id)
        depth = payload.depth + 1
        location = self._tracking_location(payload, event_id, chain_id, depth)
        if location is None:
            logger.info("event %s chain %s instance %s: no tracking issue (set REYNOLDS_TRACKING_REPO); "
                        "status only through the API", event_id, chain_id, payload.instance_id)
            return ReportResult(skipped="no tracking issue")
        repo, number, labelled = location
        github = github_for(self.services, repo)
        owner, name = repo.split("/", 1)
        body = self._status_body(payload, chain_id)
        target = f"{repo}#{number}"
        result = ReportResult(tracking_issue=target)
        if payload.sequence == 1:
            self.track(target, payload.instance_id)

        intent = EffectRecord(key=f"{payload.instance_id}:status", platform="github", kind="comment", target=target,
                              chain_id=chain_id, event_id=event_id, depth=depth)
        record, fresh = self.services.lineage.begin_effect(intent)
        if record.state != "done":
            found = None if fresh else self._find_status_comment(github, owner, name, number, payload.instance_id)
            if found is None:
                signed = sign_text(self._marker_key(), body, chain_id, event_id, depth)
                response = self._write(lambda: github.rest.issues.create_comment(owner, name, number, body=signed),
                                       kind="comment")
                found = int(response.parsed_data.id)
                result.created = True
                logger.info("event %s chain %s instance %s: status comment %s on %s", event_id, chain_id,
                            payload.instance_id, found, target)
            record = self.services.lineage.complete_effect(record, f"comment:{found}", body)
            result.comment_id = found
        else:
            result.comment_id = int((record.resource_id or "comment:0").removeprefix("comment:"))
            if payload.sequence > 1:
                result.edited = self._edit_status(github, owner, name, result.comment_id, payload, body, target,
                                                  chain_id, event_id, depth)

        if labelled:
            self._done_labels(payload, target, chain_id, event_id, depth)
        else:
            result.labels_changed = self._set_labels(github, owner, name, number, payload, target, chain_id,
                                                     event_id, depth)
        return result

    def _edit_status(self, github: Any, owner: str, name: str, comment_id: int, payload: ReportPayload, body: str,
                     target: str, chain_id: str, event_id: str, depth: int) -> bool:
        intent = EffectRecord(key=f"{payload.instance_id}:status:{payload.sequence}", platform="github",
                              kind="comment_edit", target=target, chain_id=chain_id, event_id=event_id, depth=depth)
        record, _ = self.services.lineage.begin_effect(intent)
        if record.state == "done":
            return False
        if self._newer_report_shown(payload):
            # Read before write: a report committed late (a retry after an outage) never replaces a newer one.
            logger.info("event %s chain %s instance %s: report %d skipped, a newer one is on the comment", event_id,
                        chain_id, payload.instance_id, payload.sequence)
            self.services.lineage.complete_effect(record, f"comment:{comment_id}", body)
            return False
        # An edit is idempotent by nature: after a crash mid-way, editing again to the same body is harmless.
        signed = sign_text(self._marker_key(), body, chain_id, event_id, depth)
        self._write(lambda: github.rest.issues.update_comment(owner, name, comment_id, body=signed),
                    kind="comment_edit")
        self._mark_report_shown(payload)
        self.services.lineage.complete_effect(record, f"comment:{comment_id}", body)
        logger.info("event %s chain %s instance %s: status comment %s edited (report %d, %s)", event_id, chain_id,
                    payload.instance_id, comment_id, payload.sequence, payload.phase.value)
        return True

    def _set_labels(self, github: Any, owner: str, name: str, number: int, payload: ReportPayload, target: str,
                    chain_id: str, event_id: str, depth: int) -> bool:
        """Make the issue's ``reynolds:*`` labels exactly ``payload.labels`` with at most one write."""
        intent = EffectRecord(key=f"{payload.instance_id}:labels:{payload.sequence}", platform="github",
                              kind="labels", target=target, chain_id=chain_id, event_id=event_id, depth=depth)
        record, _ = self.services.lineage.begin_effect(intent)
        if record.state == "done":
            return False
        current = [label.name for label in
                   github.rest.issues.list_labels_on_issue(owner, name, number, per_page=100).parsed_data]
        wanted = {label.lower(): label for label in payload.labels}
        ours = {label.lower() for label in current if label.lower().startswith(LABEL_PREFIX)}
        to_add = sorted(wanted[key] for key in set(wanted) - ours)
        to_remove = ours - set(wanted)
        changed = bool(to_add or to_remove)
        if to_remove:
            # One PATCH sets the whole list (keeping everyone else's labels); cheaper than a DELETE per label.
            keep = [label for label in current if not label.lower().startswith(LABEL_PREFIX)]
            self._write(lambda: github.rest.issues.update(owner, name, number, labels=keep + sorted(wanted.values())),
                        kind="label")
        elif to_add:
            self._write(lambda: github.rest.issues.add_labels(owner, name, number, labels=to_add), kind="label")
        self.services.lineage.complete_effect(record, f"labels:{target}:{payload.sequence}",
                                              " ".join(sorted(wanted.values())))
        if changed:
            logger.info("event %s chain %s instance %s: labels of %s set to %s", event_id, chain_id,
                        payload.instance_id, target, sorted(wanted.values()))
        return changed

    def _done_labels(self, payload: ReportPayload, target: str, chain_id: str, event_id: str, depth: int) -> None:
        """The tracking issue was created with this report's labels: record the label step as done."""
        intent = EffectRecord(key=f"{payload.instance_id}:labels:{payload.sequence}", platform="github",
                              kind="labels", target=target, chain_id=chain_id, event_id=event_id, depth=depth)
        record, _ = self.services.lineage.begin_effect(intent)
        if record.state != "done":
            self.services.lineage.complete_effect(record, f"labels:{target}:{payload.sequence}",
                                                  " ".join(sorted(payload.labels)))

    def _tracking_location(self, payload: ReportPayload, event_id: str, chain_id: str,
                           depth: int) -> tuple[str, int, bool] | None:
        """(repo, number, created-now-with-labels) of the issue to report on; opens a tracking issue if needed."""
        if payload.tracking_issue:
            issue_repo, number = parse_tracking_issue(payload.tracking_issue)
            return issue_repo, number, False
        if not self.settings.tracking_repo:
            return None
        repo = self.settings.tracking_repo
        intent = EffectRecord(key=f"{payload.instance_id}:tracking-issue", platform="github", kind="issue",
                              target=repo, chain_id=chain_id, event_id=event_id, depth=depth)
        record, fresh = self.services.lineage.begin_effect(intent)
        if record.state == "done" and record.resource_id:
            return record.target, int(record.resource_id.removeprefix("issue:")), False
        if not fresh:
            # GitHub has no idempotency key for issue creation; a crash between the POST and the ledger write
            # can leave one orphaned tracking issue behind. Logged so it can be closed by hand.
            logger.warning("event %s instance %s: tracking issue intent found without a result; opening again",
                           event_id, payload.instance_id)
        owner, name = repo.split("/", 1)
        text = redact_secrets(self._tracking_body(payload), secret_values(self.settings))
        github = github_for(self.services, repo)
        title = escape_content(redact_secrets(f"Reynolds: {payload.title}", secret_values(self.settings)), 250)
        signed = sign_text(self._marker_key(), text, chain_id, event_id, depth)
        response = self._write(lambda: github.rest.issues.create(owner, name, title=title, body=signed,
                                                                 labels=sorted(payload.labels)), kind="issue")
        number = int(response.parsed_data.number)
        self.services.lineage.complete_effect(record, f"issue:{number}", text)
        logger.info("event %s chain %s instance %s: opened tracking issue %s#%s", event_id, chain_id,
                    payload.instance_id, repo, number)
        return repo, number, True

    @staticmethod
    def _tracking_body(payload: ReportPayload) -> str:
        return (f"Reynolds tracks orchestration `{payload.instance_id}` here.\n\n"
                f"**Task:** {escape_content(payload.title, 500)}\n\n"
                "The status comment below is edited in place as the subtasks finish.")

    def _status_body(self, payload: ReportPayload, chain_id: str) -> str:
        secrets = secret_values(self.settings)
        body = render_status_comment(redact_secrets(payload.title, secrets), payload.instance_id, payload.states,
                                     payload.outcomes, phase=payload.phase, chain_id=chain_id,
                                     chain_url=explorer_url(self.settings.explorer_url, chain_id))
        if payload.error:
            body += f"\n\n**Error:** {escape_content(redact_secrets(payload.error, secrets), 500)}"
        body += f"\n\n> {get_reynolds_wisdom(payload.phase.value)}"
        # Room for the lineage marker that sign_text appends.
        return body[: MAX_COMMENT_CHARS - 300]

    def _find_status_comment(self, github: Any, owner: str, name: str, number: int, instance_id: str) -> int | None:
        """Crash reconciliation: Reynolds' comment on the issue that carries this instance's status marker."""
        # sign_text strips hidden comments other than the lineage marker; the visible instance line remains.
        needle = f"Instance: `{escape_content(instance_id, 200).replace('`', '')}`"
        for comment in github.rest.paginate(github.rest.issues.list_comments, owner=owner, repo=name,
                                            issue_number=number, per_page=100):
            login = comment.user.login if comment.user else None
            if login == self.settings.bot_login and needle in (comment.body or ""):
                return int(comment.id)
        return None

    def _newer_report_shown(self, payload: ReportPayload) -> bool:
        doc_id = safe_id(f"status-seq:{payload.instance_id}")
        try:
            doc = self.store.read(doc_id, doc_id)
        except NotFound:
            return False
        return str(doc.get("run") or "") == payload.run and int(doc.get("sequence") or 0) > payload.sequence

    def _mark_report_shown(self, payload: ReportPayload) -> None:
        """Record the newest report of this run the comment shows (a newer run starts over)."""

        def update(doc: dict[str, Any] | None) -> dict[str, Any]:
            shown = doc or {}
            sequence = payload.sequence
            if str(shown.get("run") or "") == payload.run:
                sequence = max(sequence, int(shown.get("sequence") or 0))
            return {"kind": "status-seq", "instance_id": payload.instance_id, "run": payload.run,
                    "sequence": sequence, "ttl": TASK_DOC_TTL_SECONDS}

        update_document(self.store, safe_id(f"status-seq:{payload.instance_id}"), update)

    def track(self, issue: str, instance_id: str) -> None:
        """Index the orchestration reporting on ``owner/repo#N`` (``/reynolds`` commands there reach it)."""
        doc_id = safe_id(f"ti:{issue}")
        self.store.upsert({"id": doc_id, "pk": doc_id, "kind": "tracked-issue", "issue": issue,
                           "instance_id": instance_id, "ttl": TASK_DOC_TTL_SECONDS})

    def tracked_instance(self, issue: str) -> str | None:
        """The orchestration last started on ``owner/repo#N``, or None."""
        doc_id = safe_id(f"ti:{issue}")
        try:
            return str(self.store.read(doc_id, doc_id)["instance_id"])
        except NotFound:
            return None

    def _remember_task(self, payload: ReportPayload) -> float:
        """Record the task's latest phase; return when it was first reported (its start, for durations)."""
        now = self.services.clock().timestamp()

        def update(doc: dict[str, Any] | None) -> dict[str, Any]:
            return {"kind": "task", "instance_id": payload.instance_id, "phase": payload.phase.value,
                    "sequence": payload.sequence, "chain_id": payload.chain_id, "ttl": TASK_DOC_TTL_SECONDS,
                    "started_at": (doc or {}).get("started_at", now)}

        written = update_document(self.store, safe_id(f"task:{payload.instance_id}"), update)
        return float((written or {}).get("started_at", now))

    def task_counts(self) -> dict[str, int]:
        """Orchestrations seen by the report activity, by their last reported phase (cold path: a query)."""
        counts: dict[str, int] = {"total": 0}
        for doc in self.store.query(Query(equals={"kind": "task"})):
            phase = str(doc.get("phase") or "unknown")
            counts[phase] = counts.get(phase, 0) + 1
            counts["total"] += 1
        return counts

    # -- GitHub plumbing ---------------------------------------------------------------------------------
    def _marker_key(self) -> str:
        return self.settings.require("marker_signing_key")

    def _write(self, call: Callable[[], Any], installation: int | str = "default", kind: str = "write") -> Any:
        """One GitHub write, paced; a secondary-limit answer (403/429) blocks further writes, then raises."""
        self.pacer.acquire(installation, max_wait=MAX_WRITE_WAIT_SECONDS)
        try:
            response = call()
        except RequestFailed as exc:
            status = exc.response.status_code
            if status == 429 or (status == 403 and _rate_limited(exc)):
                wait = self.pacer.penalize(installation, _retry_after(exc))
                logger.warning("GitHub secondary rate limit (HTTP %s): writes paused for %.0f s", status, wait)
            raise
        self.pacer.record_success(installation)
        record_github_write(kind)
        return response


def _retry_after(exc: RequestFailed) -> float | None:
    try:
        return float(exc.response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _rate_limited(exc: RequestFailed) -> bool:
    headers = exc.response.headers
    return "retry-after" in headers or headers.get("x-ratelimit-remaining") == "0" or "rate limit" in str(exc).lower()


def subtask_ids_waiting(custom_status: Any) -> list[str]:
    """Subtask ids the parent's custom status shows as waiting for approval: its ``waiting_ids`` list (kept
    even when a large plan's per-subtask map no longer fits the 16 KB status), else the map."""
    if not isinstance(custom_status, Mapping):
        return []
    listed = custom_status.get("waiting_ids")
    if isinstance(listed, list):
        return sorted(str(sid) for sid in listed)
    subtasks = custom_status.get("subtasks")
    if not isinstance(subtasks, Mapping):
        return []
    return sorted(str(sid) for sid, state in subtasks.items() if state == SubtaskState.WAITING.value)


def waiting_subtask_instances(parent_instance_id: str, custom_status: Any) -> dict[str, str]:
    """Each subtask waiting for approval → the instance id its approval goes to (the parent's run is in it)."""
    run = str(custom_status.get("run") or "") if isinstance(custom_status, Mapping) else ""
    return {sid: subtask_instance_id(parent_instance_id, sid, run) for sid in subtask_ids_waiting(custom_status)}


__all__ = [
    "ReportPayload",
    "ReportResult",
    "TaskReporter",
    "github_for",
    "parse_tracking_issue",
    "subtask_ids_waiting",
    "waiting_subtask_instances",
]
