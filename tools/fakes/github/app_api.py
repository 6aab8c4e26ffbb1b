"""The GitHub App webhook deliveries endpoints of the fake GitHub, and its write fault modes.

Deliveries, modelled on GitHub's REST reference "REST API endpoints for GitHub App webhooks"
(docs.github.com/rest/apps/webhooks) and the schema githubkit generates from GitHub's OpenAPI description
(``githubkit_schemas/.../models/group_0012.py``, ``HookDeliveryItem``; ``rest/apps.py``,
``AppsClient.list_webhook_deliveries`` / ``redeliver_webhook_delivery``):

* ``GET /app/hook/deliveries`` — newest first; ``per_page`` (default 30, at most 100), ``cursor`` paging with a
  ``Link: <…?cursor=…>; rel="next"`` header, ``status=success|failure``; each item has ``id``, ``guid``
  (``X-GitHub-Delivery``, shared by a delivery and its redeliveries), ``delivered_at``, ``redelivery``,
  ``duration``, ``status`` ("OK" or why not), ``status_code``, ``event``, ``action``, ``installation_id``,
  ``repository_id``, ``throttled_at``.
* ``POST /app/hook/deliveries/{delivery_id}/attempts`` — 202 ``{}``; the redelivery is queued in
  :attr:`DeliveryLog.outbox` for the world to POST (same guid, ``redelivery: true``); 404 for an unknown id and
  422 for a delivery older than the 3 days GitHub keeps (docs: "Handling failed webhook deliveries",
  "Redelivering webhooks": deliveries from the past 3 days can be redelivered).

Both need the App's JWT ("You must use a JWT to access this endpoint"): only the login registered with
:meth:`DeliveryLog.allow_app` passes; any other token gets GitHub's 401 for a token that is not a JWT.
GitHub does not redeliver a failed delivery by itself ("GitHub does not automatically redeliver failed
deliveries"): nothing here does either.

Fault modes (:class:`WriteFaults`): a write that fails *after* GitHub stored it (the client sees 502 or a
reset, the comment exists), and a *late commit* (the client sees 504; GitHub stores the write
``delay_seconds`` later on the fake's clock). Failing *before* storing is ``FakeGitHub.fail_next``.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from tools.fakes.github.records import JSON, HttpError, RequestContext, error_body, timestamp

if TYPE_CHECKING:
    from tools.fakes.github.fake import FakeGitHub

_D_HOOKS = "https://docs.github.com/rest/apps/webhooks"
#: GitHub keeps deliveries redeliverable for 3 days.
REDELIVERY_WINDOW = timedelta(days=3)


@dataclass
class Delivery:
    """One delivery attempt of the App's webhook, as GitHub records it."""

    id: int
    guid: str
    event: str
    action: str | None
    delivered_at: datetime
    status_code: int
    redelivery: bool
    installation_id: int | None
    repository_id: int | None
    headers: dict[str, str]
    body: bytes


@dataclass
class DeliveryLog:
    """Every delivery the world made to Reynolds, and the redeliveries Reynolds asked for."""

    app_login: str | None = None
    items: list[Delivery] = field(default_factory=list)
    #: Redeliveries requested through the API, for the world to POST: (guid, headers, body).
    outbox: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    next_id: int = 90_000_000_001

    def allow_app(self, login: str) -> None:
        """The login whose token stands for the App's JWT on ``/app/*``."""
        self.app_login = login

    def record(self, fake: FakeGitHub, headers: dict[str, str], body: bytes, status_code: int) -> Delivery:
        """Record a delivery attempt and the status Reynolds answered (a redelivery when its guid is known)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        guid = lowered.get("x-github-delivery", "")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # GitHub records whatever it sent, even what Reynolds refused
            payload = {}
        payload = payload if isinstance(payload, dict) else {}
        with fake._lock:
            delivery = Delivery(
                id=self.next_id, guid=guid, event=lowered.get("x-github-event", ""),
                action=payload.get("action") if isinstance(payload.get("action"), str) else None,
                delivered_at=fake.clock(), status_code=status_code,
                redelivery=any(d.guid == guid for d in self.items),
                installation_id=(payload.get("installation") or {}).get("id"),
                repository_id=(payload.get("repository") or {}).get("id"), headers=dict(headers), body=body)
            self.next_id += 1
            self.items.append(delivery)
            return delivery


def delivery_log(fake: FakeGitHub) -> DeliveryLog:
    """The fake's delivery log (created on first use)."""
    log = getattr(fake, "deliveries", None)
    if log is None:
        log = DeliveryLog()
        fake.deliveries = log  # type: ignore[attr-defined]
    return log


def _render(d: Delivery) -> dict[str, Any]:
    ok = 200 <= d.status_code < 300
    return {"id": d.id, "guid": d.guid, "delivered_at": timestamp(d.delivered_at), "redelivery": d.redelivery,
            "duration": 0.05, "status": "OK" if ok else f"Invalid HTTP Response: {d.status_code}",
            "status_code": d.status_code, "event": d.event, "action": d.action,
            "installation_id": d.installation_id, "repository_id": d.repository_id, "throttled_at": None}


def _require_app(fake: FakeGitHub, ctx: RequestContext) -> DeliveryLog:
    log = delivery_log(fake)
    if log.app_login is None or ctx.login != log.app_login:
        raise HttpError(401, error_body(401, "A JSON web token could not be decoded", ctx.doc))
    return log


def list_deliveries(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    log = _require_app(fake, ctx)
    try:
        per_page = min(max(int(ctx.query.get("per_page", "30")), 1), 100)
    except ValueError:
        per_page = 30
    status = ctx.query.get("status")
    if status not in (None, "success", "failure"):
        raise HttpError(422, error_body(422, "Validation Failed", ctx.doc))
    items = sorted(log.items, key=lambda d: d.id, reverse=True)
    if status is not None:
        items = [d for d in items if (200 <= d.status_code < 300) == (status == "success")]
    cursor = ctx.query.get("cursor")
    if cursor:
        match = re.fullmatch(r"v1_(\d+)", cursor)
        if match is None:
            raise HttpError(400, error_body(400, "Invalid cursor", ctx.doc))
        items = [d for d in items if d.id < int(match[1])]
    page = items[:per_page]
    if len(items) > per_page:
        query = {k: v for k, v in ctx.query.items() if k != "cursor"}
        query.update(per_page=str(per_page), cursor=f"v1_{page[-1].id}")
        ctx.headers["link"] = f'<{fake._api}/app/hook/deliveries?{urlencode(query)}>; rel="next"'
    return 200, [_render(d) for d in page]


def redeliver(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    log = _require_app(fake, ctx)
    delivery = next((d for d in log.items if d.id == int(ctx.params["delivery_id"])), None)
    if delivery is None:
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    if fake.clock() - delivery.delivered_at > REDELIVERY_WINDOW:
        raise HttpError(422, error_body(422, "This delivery is too old to redeliver", ctx.doc))
    log.outbox.append((delivery.guid, dict(delivery.headers), delivery.body))
    return 202, {}


ROUTES = [
    ("GET", re.compile(r"/app/hook/deliveries"), list_deliveries, f"{_D_HOOKS}#list-deliveries-for-an-app-webhook"),
    ("POST", re.compile(r"/app/hook/deliveries/(?P<delivery_id>\d+)/attempts"), redeliver,
     f"{_D_HOOKS}#redeliver-a-delivery-for-an-app-webhook"),
]


@dataclass
class _Late:
    due: datetime
    method: str
    target: str
    raw: bytes
    login: str


@dataclass
class WriteFaults:
    """Faults around a write: stored-then-failed, and late commits (see the module docstring)."""

    after: list[tuple[str, re.Pattern[str], int, int]] = field(default_factory=list)  # method, path, status, times
    late: list[tuple[str, re.Pattern[str], float, int, int]] = field(default_factory=list)  # + delay, status
    pending: list[_Late] = field(default_factory=list)
    replaying: threading.local = field(default_factory=threading.local)

    def take_after(self, method: str, path: str) -> int | None:
        """The status to answer after storing this write, when a rule matches (consumes one use)."""
        return self._take(self.after, method, path)

    def take_late(self, method: str, path: str) -> tuple[float, int] | None:
        """(delay, status) when this write is to be committed late (consumes one use)."""
        if getattr(self.replaying, "on", False):
            return None
        for index, (m, pattern, delay, status, times) in enumerate(self.late):
            if m == method and pattern.search(path) and times > 0:
                self.late[index] = (m, pattern, delay, status, times - 1)
                return delay, status
        return None

    def _take(self, rules: list[tuple[str, re.Pattern[str], int, int]], method: str, path: str) -> int | None:
        if getattr(self.replaying, "on", False):
            return None
        for index, (m, pattern, status, times) in enumerate(rules):
            if m == method and pattern.search(path) and times > 0:
                rules[index] = (m, pattern, status, times - 1)
                return status
        return None


def write_faults(fake: FakeGitHub) -> WriteFaults:
    """The fake's write fault modes (created on first use)."""
    faults = getattr(fake, "write_faults", None)
    if faults is None:
        faults = WriteFaults()
        fake.write_faults = faults  # type: ignore[attr-defined]
    return faults


def fail_after_write(fake: FakeGitHub, method: str, path_regex: str, status: int = 502, times: int = 1) -> None:
    """The next ``times`` matching writes are stored, then answered ``status`` (the client cannot tell)."""
    with fake._lock:
        write_faults(fake).after.append((method.upper(), re.compile(path_regex), status, times))


def commit_late(fake: FakeGitHub, method: str, path_regex: str, delay_seconds: float = 15.0, status: int = 504,
                times: int = 1) -> None:
    """The next ``times`` matching writes answer ``status`` at once and are stored ``delay_seconds`` later."""
    with fake._lock:
        write_faults(fake).late.append((method.upper(), re.compile(path_regex), delay_seconds, status, times))


def defer(fake: FakeGitHub, method: str, target: str, raw: bytes, login: str, delay: float) -> None:
    """Keep a late write for :func:`commit_due` (lock held by the caller)."""
    write_faults(fake).pending.append(_Late(fake.clock() + timedelta(seconds=delay), method, target, raw, login))


def commit_due(fake: FakeGitHub) -> int:
    """Store every late write whose time has come, through the same request path; how many were stored."""
    faults = write_faults(fake)
    with fake._lock:
        now = fake.clock()
        due = [p for p in faults.pending if p.due <= now]
        faults.pending = [p for p in faults.pending if p.due > now]
    faults.replaying.on = True
    try:
        for item in due:
            fake._process(item.method, item.target, item.raw, login=item.login)
    finally:
        faults.replaying.on = False
    return len(due)
