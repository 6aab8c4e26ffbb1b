"""The domain logic behind the orchestrate_task activities and the task API.

* **Planning**: the Azure OpenAI planner when a model is configured, else the deterministic ``offline_plan``.
* **Running a subtask**: offline, a deterministic stand-in specialist (clearly marked ``(offline)``); with a model,
  ``run_specialist`` with the read-only GitHub tool executor. Model throttling and permanent model errors become
  the engine's classified results; every other failure raises (the engine retries it).
* **Reporting**: one status comment per orchestration, created once (effect-ledger key ``{instance}:status``)
  and edited in place afterwards, plus the exact ``reynolds:*`` label set. Every write goes through the effect
  ledger (intent before the call, resource after it) and the per-process :class:`GitHubPacer`. A task that is
  not tied to an issue gets a tracking issue in ``REYNOLDS_TRACKING_REPO`` (created with its first labels, so
  a run costs at most: issue, comment, one edit per later report, one label change per later report).
* **Agent statistics**: per specialist (``agent:<specialist>`` documents, ETag-guarded read-modify-write):
  calls, outcomes, recent durations and a consecutive-failure circuit breaker.

No ``azure.functions`` import here: activities and triggers are thin adapters over :class:`TaskService`.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from shared.ai.client import ModelError, ModelThrottled, TokenBudget, make_openai_client
from shared.ai.planner import analyze_potential, offline_plan, plan_task
from shared.ai.safety import UntrustedText, secret_values
from shared.ai.specialists import run_specialist
from shared.errors import IncomingRequestError, NotFound, StoreError
from shared.loop.lineage import EffectRecord, new_chain_id
from shared.loop.marker import sign_text
from shared.platforms.github.client import RequestFailed
from shared.platforms.github.pacer import GitHubPacer, get_pacer, set_pacer
from shared.platforms.github.read_tools import GitHubReadTools
from shared.services import Services
from shared.store.base import Query, safe_id, update_document
from shared.telemetry import record_github_write, record_llm_tokens, record_orchestration
from shared.work.status_report import MAX_COMMENT_CHARS, ReportPhase, escape_content, render_status_comment
from shared.work.tasks import Plan, Specialist, Subtask, SubtaskState, TaskLineage, TaskRequest, TaskSpec
from shared.work.wisdom import get_reynolds_wisdom

if TYPE_CHECKING:
    import openai

logger = logging.getLogger(__name__)

#: How long an activity may wait for a GitHub write slot before it gives up (the report is best effort).
MAX_WRITE_WAIT_SECONDS = 15.0
#: Consecutive failures that open a specialist's circuit breaker, and how long it stays open.
BREAKER_FAILURES = 5
BREAKER_COOLDOWN_SECONDS = 300.0
#: Durations kept per specialist (p50/p95 and the analyzer's learned durations).
DURATION_SAMPLES = 200
#: Attempt keys remembered per specialist so that a re-run activity is not counted twice.
SEEN_KEYS = 256
TASK_DOC_TTL_SECONDS = 30 * 86400
LABEL_PREFIX = "reynolds:"
_TRACKING_ISSUE = re.compile(
    r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100})#(?P<number>[1-9]\d{0,9})$"
)


# --- payload models (the activities' contracts, see orchestrators/engine.py) -------------------------------


class RunSubtaskPayload(TaskLineage):
    """Input of ``run_subtask_activity``."""

    model_config = ConfigDict(extra="ignore")

    instance_id: str
    subtask_instance_id: str
    idempotency_key: str
    attempt: int = Field(ge=1)
    subtask: Subtask
    task: TaskSpec
    dependency_summaries: dict[str, str] = Field(default_factory=dict)


class ReportPayload(TaskLineage):
    """Input of ``report_status_activity``."""

    model_config = ConfigDict(extra="ignore")

    instance_id: str
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


class AgentStats(BaseModel):
    """Learned statistics of one specialist (``GET /api/agents``)."""

    specialist: Specialist
    calls: int = 0
    successes: int = 0
    failures: int = 0
    success_rate: float | None = None
    p50_seconds: float | None = None
    p95_seconds: float | None = None
    breaker: str = "closed"
    consecutive_failures: int = 0


def parse_tracking_issue(value: str) -> tuple[str, int]:
    """``owner/repo#N`` → (repo, N); raises ``IncomingRequestError`` (422) on anything else."""
    match = _TRACKING_ISSUE.match(value or "")
    if match is None:
        raise IncomingRequestError(f"tracking issue {value!r} is not of the form owner/repo#number", 422)
    return match["repo"], int(match["number"])


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None when empty)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return round(ordered[rank - 1], 4)


# --- process-wide pacer and model client ---------------------------------------------------------------------

_lock = threading.Lock()
_model_clients: dict[str, Any] = {}


def set_model_client(endpoint: str, client: Any | None) -> None:
    """Install the model client for ``endpoint`` (tests point it at a local fake); ``None`` forgets it."""
    with _lock:
        if client is None:
            _model_clients.pop(endpoint, None)
        else:
            _model_clients[endpoint] = client


class TaskService:
    """Planning, subtask execution, status reporting and agent statistics over one ``Services`` container."""

    def __init__(self, services: Services, *, pacer: GitHubPacer | None = None) -> None:
        self.services = services
        self.settings = services.settings
        self.store = services.store
        self.pacer = pacer or get_pacer()

    # -- the model ---------------------------------------------------------------------------------------
    def model_client(self) -> openai.OpenAI | None:
        """The Azure OpenAI client, or None in offline mode (no ``AZURE_OPENAI_ENDPOINT``)."""
        endpoint = self.settings.openai_endpoint
        if not endpoint:
            return None
        with _lock:
            client = _model_clients.get(endpoint)
            if client is None:
                client = make_openai_client(self.settings)
                _model_clients[endpoint] = client
        return client

    @property
    def offline(self) -> bool:
        """True when no model is configured: deterministic planner and offline specialists."""
        return not self.settings.openai_endpoint

    # -- planning ----------------------------------------------------------------------------------------
    def plan(self, request: TaskRequest) -> Plan:
        """The plan of ``request``: the model's when configured, the offline planner's otherwise.

        A model that is throttled or keeps answering invalid plans does not fail the orchestration: the
        offline planner takes over and the plan says so (``planner: offline`` and the reason in ``rationale``).
        """
        client = self.model_client()
        if client is None:
            return offline_plan(request.task)
        try:
            return plan_task(request.task, client, self.settings.openai_deployment,
                             budget=TokenBudget(self.settings.openai_token_budget))
        except (ModelThrottled, ModelError) as exc:
            logger.warning("event %s chain %s: model planner failed (%s); offline plan instead",
                           request.event_id, request.chain_id, exc)
            fallback = offline_plan(request.task)
            return fallback.model_copy(update={"rationale": f"model planner failed ({exc}); {fallback.rationale}"})

    def analyze(self, request: TaskRequest) -> dict[str, Any]:
        """Plan ``request`` and predict its parallel speedup from the specialists' learned durations."""
        plan = self.plan(request)
        durations = self.learned_durations()
        analysis = analyze_potential(plan, durations, request.strategy.max_concurrency)
        return {"plan": plan.model_dump(mode="json"), "analysis": analysis,
                "durations": {key.value: value for key, value in durations.items()},
                "mode": "offline" if self.offline else "model"}

    # -- running a subtask -------------------------------------------------------------------------------
    def run_subtask(self, payload: RunSubtaskPayload) -> dict[str, Any]:
        """One attempt of a subtask; returns the engine's ``RunSubtaskResult`` dict (see module docstring)."""
        specialist = payload.subtask.specialist
        attempt_key = f"{payload.idempotency_key}:{payload.attempt}"
        wait = self.breaker_wait(specialist)
        if wait > 0:
            logger.warning("instance %s subtask %s: %s breaker open; retry in %.0f s", payload.instance_id,
                           payload.subtask.id, specialist.value, wait)
            return {"ok": False, "retryable": True, "retry_after": wait,
                    "error": f"{specialist.value} circuit breaker is open"}
        started = time.perf_counter()
        try:
            result = self._run_offline(payload) if self.offline else self._run_with_model(payload)
        except Exception:
            self.record_call(specialist, attempt_key, ok=False, seconds=time.perf_counter() - started)
            raise
        self.record_call(specialist, attempt_key, ok=bool(result["ok"]), seconds=time.perf_counter() - started)
        logger.info("event %s chain %s instance %s subtask %s attempt %d: %s", payload.event_id, payload.chain_id,
                    payload.instance_id, payload.subtask.id, payload.attempt, "ok" if result["ok"] else "failed")
        return result

    @staticmethod
    def _run_offline(payload: RunSubtaskPayload) -> dict[str, Any]:
        subtask = payload.subtask
        return {"ok": True, "summary": f"{subtask.specialist.value} (offline): {subtask.title}"}

    def _run_with_model(self, payload: RunSubtaskPayload) -> dict[str, Any]:
        client = self.model_client()
        if client is None:  # pragma: no cover - offline is decided before
            return self._run_offline(payload)
        task, subtask = payload.task, payload.subtask
        allowed = [task.repo] if task.repo else []
        context = [UntrustedText("task-description", task.type, task.description)]
        if task.components:
            context.append(UntrustedText("task-components", task.type, "\n".join(task.components)))
        context.extend(UntrustedText("dependency-result", dep, text)
                       for dep, text in payload.dependency_summaries.items())
        tools = GitHubReadTools(self._github(task.repo), allowed_repos=allowed)
        # One token budget per orchestration, shared by its subtasks (parallel ones may overshoot by what
        # their calls in flight spend: each checks before every model call).
        spent = self.tokens_spent(payload.instance_id)
        budget = TokenBudget(self.settings.openai_token_budget, used=spent)
        try:
            result = run_specialist(client, self.settings.openai_deployment, subtask.specialist, subtask, context,
                                    tools, budget, allowed_repos=allowed, secrets=secret_values(self.settings))
        except ModelThrottled as exc:
            return {"ok": False, "retryable": True, "retry_after": exc.retry_after_seconds, "error": str(exc)}
        except ModelError as exc:
            return {"ok": False, "retryable": False, "error": str(exc)}
        finally:
            self._spend(payload.instance_id, budget.used - spent)
        record_llm_tokens(result.tokens_used, subtask.specialist.value)
        summary = result.answer.summary
        if result.proposed_writes:
            proposed = ", ".join(sorted({write.tool for write in result.proposed_writes}))
            summary = f"{summary} — approval needed: proposed {proposed} (not executed)"
        return {"ok": True, "summary": summary}

    def tokens_spent(self, instance_id: str) -> int:
        """Model tokens the orchestration ``instance_id`` has spent so far (all its subtasks)."""
        doc_id = safe_id(f"budget:{instance_id}")
        try:
            return int(self.store.read(doc_id, doc_id).get("used", 0))
        except NotFound:
            return 0

    def _spend(self, instance_id: str, tokens: int) -> None:
        if tokens <= 0:
            return

        def update(doc: dict[str, Any] | None) -> dict[str, Any]:
            used = int((doc or {}).get("used", 0)) + tokens
            return {"kind": "budget", "instance_id": instance_id, "used": used, "ttl": TASK_DOC_TTL_SECONDS}

        update_document(self.store, safe_id(f"budget:{instance_id}"), update)

    # -- agent statistics --------------------------------------------------------------------------------
    def record_call(self, specialist: Specialist, attempt_key: str, *, ok: bool, seconds: float) -> None:
        """Count one attempt (once per attempt key, so a re-run activity is not counted twice)."""
        doc_id = f"agent:{specialist.value}"
        now = self.services.clock().timestamp()

        def update(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            body = doc or {"kind": "agent", "specialist": specialist.value}
            seen: list[str] = list(body.get("seen", []))
            if attempt_key in seen:
                return None
            body = dict(body)
            body["seen"] = [*seen, attempt_key][-SEEN_KEYS:]
            body["calls"] = int(body.get("calls", 0)) + 1
            body["successes"] = int(body.get("successes", 0)) + (1 if ok else 0)
            body["failures"] = int(body.get("failures", 0)) + (0 if ok else 1)
            body["durations"] = [*body.get("durations", []), round(max(0.0, seconds), 6)][-DURATION_SAMPLES:]
            body["consecutive_failures"] = 0 if ok else int(body.get("consecutive_failures", 0)) + 1
            if not ok:
                body["last_failure_at"] = now
            return body

        update_document(self.store, doc_id, update)

    def _agent_doc(self, specialist: Specialist) -> dict[str, Any]:
        doc_id = f"agent:{specialist.value}"
        try:
            return self.store.read(doc_id, doc_id)
        except NotFound:
            return {}

    def _breaker(self, doc: Mapping[str, Any]) -> tuple[str, float]:
        failures = int(doc.get("consecutive_failures", 0))
        if failures < BREAKER_FAILURES:
            return "closed", 0.0
        elapsed = self.services.clock().timestamp() - float(doc.get("last_failure_at") or 0.0)
        if elapsed < BREAKER_COOLDOWN_SECONDS:
            return "open", BREAKER_COOLDOWN_SECONDS - elapsed
        return "half_open", 0.0

    def breaker_wait(self, specialist: Specialist) -> float:
        """Seconds until the specialist's breaker lets an attempt through (0 when closed or half-open)."""
        return self._breaker(self._agent_doc(specialist))[1]

    def agent_stats(self) -> list[AgentStats]:
        """Every specialist's learned statistics."""
        stats: list[AgentStats] = []
        for specialist in Specialist:
            doc = self._agent_doc(specialist)
            calls = int(doc.get("calls", 0))
            durations = [float(x) for x in doc.get("durations", [])]
            stats.append(AgentStats(
                specialist=specialist, calls=calls, successes=int(doc.get("successes", 0)),
                failures=int(doc.get("failures", 0)),
                success_rate=round(int(doc.get("successes", 0)) / calls, 4) if calls else None,
                p50_seconds=percentile(durations, 0.5), p95_seconds=percentile(durations, 0.95),
                breaker=self._breaker(doc)[0], consecutive_failures=int(doc.get("consecutive_failures", 0)),
            ))
        return stats

    def learned_durations(self, default: float = 1.0) -> dict[Specialist, float]:
        """Median duration per specialist from the statistics (``default`` where nothing was learned)."""
        durations: dict[Specialist, float] = {}
        for stats in self.agent_stats():
            durations[stats.specialist] = stats.p50_seconds if stats.p50_seconds else default
        return durations

    def task_counts(self) -> dict[str, int]:
        """Orchestrations seen by the report activity, by their last reported phase (cold path: a query)."""
        counts: dict[str, int] = {"total": 0}
        for doc in self.store.query(Query(equals={"kind": "task"})):
            phase = str(doc.get("phase") or "unknown")
            counts[phase] = counts.get(phase, 0) + 1
            counts["total"] += 1
        return counts

    def store_reachable(self) -> bool:
        """One point read: True when the store answers (a missing document is an answer)."""
        try:
            self.store.read("health", "health")
        except NotFound:
            return True
        except StoreError:
            return False
        return True

    # -- reporting -------------------------------------------------------------------------------------
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
        github = self._github(repo)
        owner, name = repo.split("/", 1)
        body = self._status_body(payload)
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
        # An edit is idempotent by nature: after a crash mid-way, editing again to the same body is harmless.
        signed = sign_text(self._marker_key(), body, chain_id, event_id, depth)
        self._write(lambda: github.rest.issues.update_comment(owner, name, comment_id, body=signed),
                    kind="comment_edit")
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
        text = self._tracking_body(payload)
        github = self._github(repo)
        title = escape_content(f"Reynolds: {payload.title}", 250)
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

    def _status_body(self, payload: ReportPayload) -> str:
        body = render_status_comment(payload.title, payload.instance_id, payload.states, payload.outcomes,
                                     phase=payload.phase)
        if payload.error:
            body += f"\n\n**Error:** {escape_content(payload.error, 500)}"
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

    # -- GitHub plumbing ---------------------------------------------------------------------------------
    def _github(self, repo: str | None) -> Any:
        if self.services.github is None:
            from shared.platforms.github.client import GitHubClients

            self.services.github = GitHubClients(self.settings)
        return self.services.github.for_repo(repo)

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
    """Subtask ids the parent's custom status shows as waiting for approval."""
    if not isinstance(custom_status, Mapping):
        return []
    subtasks = custom_status.get("subtasks")
    if not isinstance(subtasks, Mapping):
        return []
    return sorted(str(sid) for sid, state in subtasks.items() if state == SubtaskState.WAITING.value)


__all__ = [
    "AgentStats",
    "ReportPayload",
    "ReportResult",
    "RunSubtaskPayload",
    "TaskService",
    "get_pacer",
    "parse_tracking_issue",
    "percentile",
    "set_model_client",
    "set_pacer",
    "subtask_ids_waiting",
]
