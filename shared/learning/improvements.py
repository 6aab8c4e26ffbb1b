"""Improvements: the rule that turns a recurring failure signature into one improvement issue (pure).

Modelled on FlakyBot (googleapis/repo-automation-bots, ``packages/flakybot``: one issue per failing test,
reopened when it fails again after a close, marked flaky when it passes on a retry, left alone when closed as
won't-fix), made exactly-once and measured:

* **threshold** — the policy's ``improvements: {enabled, threshold, window_days}`` (``.github/reynolds.yml``,
  the key ``shared.act.policy`` reserves; default 3 occurrences within 7 days): the issue is filed when the
  occurrences inside the window reach the threshold. Filed without approval: it is Reynolds' own report.
* **file once** — every step carries an idempotency key for the effect ledger (``improvement:<repo>:<signature>:
  issue``); the key never changes, so a retried or redelivered step writes nothing twice.
* **one comment, current** — the comment (``render_comment``: count, first/last seen, recent links) is created
  once under its key and then edited in place whenever the count moved.
* **reopen on recurrence** — a failure after a close *as completed* reopens the issue (a new key per reopen);
  closed as *not planned* is a decision not to fix: counted, never reopened.
* **flaky** — a failure that passed when retried labels the issue ``flaky``.
* **muted** — the ``MUTE_LABEL`` on the issue: counted, nothing written.
* **off** — ``enabled: false`` in the policy, or the repository defines the ``OFF_LABEL`` label: nothing.
* **effectiveness** — after a close as completed, once ``effectiveness_days`` have passed, one report: did the
  signature recur within the window (``recurred``) or not (``fixed``)? Until then ``watching``.

Why an improvement issue can never start work (the loop-safety the issue asks for), what must hold:

1. Reynolds writes the issue and its comment through its typed writer under its App identity, so GitHub's
   ``issues.opened`` / ``issue_comment.created`` webhooks name Reynolds as sender (or the App in
   ``performed_via_github_app``): ``shared.platforms.github.events._actor_kind`` makes the actor ``self``.
2. ``shared.work.routing.route`` returns None for a ``self`` actor under every profile: nothing is started.
3. The loop guard (``shared.loop.rules.judge``) answers ``self`` first for such an event, before any rule, and
   the write went through the effect ledger (``fx:``/``fr:`` documents) with the signed marker in its text, so
   even if the identity were lost, the marker (``ChainJoiner._self_evidence``) and the ledger index join it to
   its chain rather than starting a new one.
4. The other events an improvement issue causes (``issues.reopened``, ``issues.labeled``, ``issues.closed``)
   are not in ``shared.work.routing.ROUTES``: ignored whoever sends them.

``tests/test_learning_improvements.py::test_an_improvement_issue_never_starts_work`` pins 1–4 on the real
parser, router and rules. A *person* commenting on an improvement issue is a person's action and is routed as
any other: that is someone asking, not Reynolds' report starting work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

MUTE_LABEL = "reynolds: muted"
OFF_LABEL = "reynolds: no-improvements"
FLAKY_LABEL = "flaky"
IMPROVEMENT_LABEL = "reynolds: improvement"
DEFAULT_THRESHOLD = 3
DEFAULT_WINDOW_DAYS = 7
DEFAULT_EFFECTIVENESS_DAYS = 14

Action = Literal["open", "comment", "reopen", "label_flaky", "report_effectiveness"]


@dataclass(frozen=True)
class ImprovementSettings:
    """The ``improvements:`` policy of one repository."""

    enabled: bool = True
    threshold: int = DEFAULT_THRESHOLD
    window_days: int = DEFAULT_WINDOW_DAYS
    effectiveness_days: int = DEFAULT_EFFECTIVENESS_DAYS

    @classmethod
    def from_policy(cls, value: dict[str, Any] | None) -> ImprovementSettings:
        """From ``PolicyFile.improvements`` (None: defaults); ``ValueError`` naming a bad key."""
        if value is None:
            return cls()
        unknown = sorted(set(value) - {"enabled", "threshold", "window_days", "effectiveness_days"})
        if unknown:
            raise ValueError(f"improvements: unknown key {unknown[0]!r}")
        enabled = value.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError("improvements.enabled must be true or false")
        numbers = {}
        for name, low, high, default in (("threshold", 1, 1000, DEFAULT_THRESHOLD),
                                         ("window_days", 1, 365, DEFAULT_WINDOW_DAYS),
                                         ("effectiveness_days", 1, 365, DEFAULT_EFFECTIVENESS_DAYS)):
            number = value.get(name, default)
            if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
                raise ValueError(f"improvements.{name} must be a whole number from {low} to {high}")
            numbers[name] = number
        return cls(enabled=enabled, **numbers)


@dataclass(frozen=True)
class Step:
    """One write the improvements step should make, with its effect-ledger idempotency key."""

    action: Action
    key: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    """What to do for one signature now, and why (``steps`` empty: nothing)."""

    steps: tuple[Step, ...]
    reason: str


def _key(doc: dict[str, Any], suffix: str) -> str:
    return f"improvement:{doc['repo']}:{doc['signature']}:{suffix}"


def in_window(doc: dict[str, Any], now: datetime, days: int) -> int:
    """Occurrences within the last ``days`` days."""
    since = now - timedelta(days=days)
    return sum(1 for t in doc.get("times", []) if datetime.fromisoformat(t) >= since)


def decide(doc: dict[str, Any], settings: ImprovementSettings, *, now: datetime,
           issue_labels: frozenset[str] = frozenset(), repo_labels: frozenset[str] = frozenset()) -> Verdict:
    """The steps for an occurrence document (see the module docstring for the rules)."""
    if not settings.enabled:
        return Verdict((), "off by policy (improvements.enabled: false)")
    if OFF_LABEL in repo_labels:
        return Verdict((), f"off: the repository defines the label {OFF_LABEL!r}")
    if MUTE_LABEL in issue_labels or doc.get("state") == "muted":
        return Verdict((), f"muted by the label {MUTE_LABEL!r}")
    state = doc.get("state") or "none"
    count = int(doc.get("count") or 0)
    steps: list[Step] = []
    if state == "none":
        recent = in_window(doc, now, settings.window_days)
        if recent < settings.threshold:
            return Verdict((), f"{recent} of {settings.threshold} occurrences within {settings.window_days} days")
        steps.append(Step("open", _key(doc, "issue"), f"{recent} occurrences within {settings.window_days} days"))
        steps.append(Step("comment", _key(doc, "comment"), "the occurrences comment"))
    elif state == "closed":
        since = int(doc.get("since_close") or 0)
        if doc.get("closed_as") == "completed" and since > 0:
            reopen = int(doc.get("reopened") or 0) + 1
            steps.append(Step("reopen", _key(doc, f"reopen:{reopen}"), f"recurred {since} times after the close"))
            steps.append(Step("comment", _key(doc, "comment"), "occurrences after the reopen"))
        elif doc.get("closed_as") == "completed" and not doc.get("effectiveness_reported"):
            closed_at = datetime.fromisoformat(str(doc["closed_at"]))
            if now >= closed_at + timedelta(days=settings.effectiveness_days):
                steps.append(Step("report_effectiveness", _key(doc, f"effectiveness:{doc['closed_at']}"),
                                  f"no recurrence within {settings.effectiveness_days} days of the fix"))
        if not steps:
            return Verdict((), f"closed as {doc.get('closed_as')}: counted only")
    elif int(doc.get("rendered_count") or 0) != count:
        steps.append(Step("comment", _key(doc, "comment"), f"the count moved to {count}"))
    if int(doc.get("passed_on_retry") or 0) > 0 and state != "flaky" and FLAKY_LABEL not in issue_labels:
        steps.append(Step("label_flaky", _key(doc, "flaky"), "a failure passed when retried"))
    return Verdict(tuple(steps), "; ".join(s.reason for s in steps) or "up to date")


def applied(doc: dict[str, Any], step: Step, *, now: datetime, issue_number: int | None = None,
            comment_id: int | None = None) -> dict[str, Any]:
    """The occurrence document after ``step`` was written (pure; ``occurrences.update_state`` stores it)."""
    body = dict(doc)
    if step.action == "open":
        body.update(state="open", issue_number=issue_number, filed_at=now.isoformat())
    elif step.action == "comment":
        body.update(comment_id=comment_id or body.get("comment_id"), rendered_count=int(body.get("count") or 0))
    elif step.action == "reopen":
        body.update(state="open", reopened=int(body.get("reopened") or 0) + 1, since_close=0, closed_at=None,
                    closed_as=None, effectiveness_reported=False)
    elif step.action == "label_flaky":
        body["state"] = "flaky"
    elif step.action == "report_effectiveness":
        body["effectiveness_reported"] = True
    return body


def closed(doc: dict[str, Any], *, at: datetime, as_: Literal["completed", "not_planned"]) -> dict[str, Any]:
    """The document after its issue was closed (the ``issues.closed`` webhook's ``state_reason``)."""
    return {**doc, "state": "closed", "closed_at": at.isoformat(), "closed_as": as_, "since_close": 0,
            "effectiveness_reported": False}


def muted(doc: dict[str, Any], on: bool) -> dict[str, Any]:
    """The document after the mute label was added (``on``) or removed."""
    if on:
        return {**doc, "state": "muted", "state_before_mute": doc.get("state")}
    return {**doc, "state": doc.get("state_before_mute") or "open"}


def effectiveness(doc: dict[str, Any], *, now: datetime, days: int = DEFAULT_EFFECTIVENESS_DAYS) -> dict[str, Any]:
    """Whether the fix held: ``recurred`` (a failure within ``days`` of the close), ``fixed`` (the window passed
    without one) or ``watching``; ``not closed`` while the issue is open."""
    if not doc.get("closed_at"):
        return {"verdict": "not closed", "recurrences": 0, "window_days": days}
    closed_at = datetime.fromisoformat(str(doc["closed_at"]))
    end = closed_at + timedelta(days=days)
    after = [t for t in doc.get("times", []) if closed_at < datetime.fromisoformat(t) <= end]
    verdict = "recurred" if after else "fixed" if now >= end else "watching"
    return {"verdict": verdict, "recurrences": len(after), "window_days": days, "closed_at": doc["closed_at"],
            "first_recurrence": after[0] if after else None}


def render_issue(doc: dict[str, Any]) -> tuple[str, str]:
    """The improvement issue's title and body."""
    head = str(doc.get("head") or "")
    title = f"[{doc.get('failure_kind')}] {head.splitlines()[0][:120] if head else doc.get('signature')}"
    body = (f"Reynolds saw this failure recur and files it once as an improvement.\n\n"
            f"Signature `{doc.get('signature')}`:\n\n```\n{head}\n```\n\n"
            f"Occurrences and links are kept current in one comment below. Label `{MUTE_LABEL}` mutes it; "
            f"closing it as completed starts a check that the fix held.")
    return title, body


def render_comment(doc: dict[str, Any]) -> str:
    """The one comment kept current: count, first/last seen, the most recent links."""
    lines = [f"**Occurrences: {doc.get('count', 0)}** (first seen {doc.get('first_seen')}, "
             f"last seen {doc.get('last_seen')})"]
    if int(doc.get("passed_on_retry") or 0):
        lines.append(f"Passed when retried {doc['passed_on_retry']} times: marked `{FLAKY_LABEL}`.")
    if int(doc.get("reopened") or 0):
        lines.append(f"Reopened {doc['reopened']} times after a close.")
    lines.append("")
    lines.append("Recent:")
    for item in reversed(doc.get("recent", [])):
        where = item.get("link") or item.get("failure_id")
        lines.append(f"- {item.get('at')}: {where}")
    return "\n".join(lines)
