"""``POST /api/teams/webhook``: a Teams outgoing webhook call in, an acknowledgement within 5 s out.

Anonymous at the Functions level: the ``Authorization: HMAC <base64>`` signature over the raw body is the
authentication, and it fails closed (413 above 256 KB, checked first; 401 for a missing or wrong signature, checked
before any byte is parsed; 503 naming ``TEAMS_OUTGOING_WEBHOOK_TOKEN`` when no token is configured; 400 for a
malformed or too deeply nested activity). The answer is
the synchronous reply Teams shows in the thread (``build_ack_reply``); the real answer is posted later
through Graph by the reply orchestration. This trigger never calls Graph. The decision travels in
``X-Reynolds-*`` response headers (Teams ignores them; tools and operators read them). When deciding inline
fails or is slow, the message goes to the inbox (verdict ``queued``) and ``triggers/inbox.py`` decides it with
``parse_teams`` and ``admit``, the same code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import azure.durable_functions as df
import azure.functions as func

from shared import names
from shared.chain_view import explorer_url
from shared.loop.envelope import EventEnvelope
from shared.platforms.teams.webhook import build_ack_reply, parse_teams_activity, verify_teams_hmac
from shared.services import Services, get_services
from triggers.ingress import (
    INLINE_BUDGET_SECONDS,
    Admission,
    InboxItem,
    admit,
    error_response,
    goes_to_inbox,
    hand_to_inbox,
    within,
)

logger = logging.getLogger(__name__)

bp = df.Blueprint()

ACK_TEXT = {
    "accepted": "On it: Reynolds will answer in this channel shortly.",
    "duplicate": "Reynolds already has this message.",
}
DEFAULT_ACK = "Reynolds heard you; nothing to do for this message."
QUEUED_ACK = "Reynolds got your message and will answer in this channel shortly."


def _activity_id(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def ack_response(admission: Admission, delivery: str | None, chain_url: str | None = None) -> func.HttpResponse:
    """The synchronous Teams reply, with the decision in headers (ASCII only, no secret); ``chain_url`` is the
    chain's explorer page when ``REYNOLDS_EXPLORER_URL`` is set."""
    verdict = admission.decision.verdict.value
    quota = admission.decision.rule == "task-quota"  # the requester is told why nothing started
    body = build_ack_reply(ACK_TEXT.get(verdict) or (admission.decision.reason if quota else DEFAULT_ACK))
    headers = {
        "X-Reynolds-Delivery": delivery or "",
        "X-Reynolds-Event-Id": admission.decision.event_id,
        "X-Reynolds-Verdict": verdict,
        "X-Reynolds-Reason": admission.decision.reason.encode("ascii", "replace").decode()[:500],
        "X-Reynolds-Instance-Id": admission.instance_id or "",
        "X-Reynolds-Chain-Id": admission.decision.chain_id or "",
    }
    if chain_url:
        headers["X-Reynolds-Chain-Url"] = chain_url
    return func.HttpResponse(json.dumps(body), status_code=200, mimetype="application/json", headers=headers)


def parse_teams(headers: Mapping[str, str], raw: bytes, services: Services) -> EventEnvelope:
    """Verify the HMAC and parse the activity (the door and the inbox run the same checks)."""
    token = services.settings.teams_webhook_token
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    verify_teams_hmac(token.get_secret_value() if token else None, raw, authorization)
    return parse_teams_activity(raw, received_at=services.clock())


def queued_ack(delivery: str | None, event_id: str) -> func.HttpResponse:
    """The synchronous reply when the inbox decides the message (Teams waits 5 s; the answer comes later)."""
    body = build_ack_reply(QUEUED_ACK)
    headers = {"X-Reynolds-Delivery": delivery or "", "X-Reynolds-Event-Id": event_id,
               "X-Reynolds-Verdict": "queued", "X-Reynolds-Reason": "decided from the inbox",
               "X-Reynolds-Instance-Id": ""}
    return func.HttpResponse(json.dumps(body), status_code=200, mimetype="application/json", headers=headers)


@bp.function_name("teams_webhook")
@bp.route(route="teams/webhook", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.queue_output(arg_name="inbox", queue_name=names.INBOX_QUEUE, connection="AzureWebJobsStorage")
@bp.durable_client_input(client_name="client")
async def teams_webhook(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                        inbox: func.Out[str]) -> func.HttpResponse:
    """Verify, parse, decide and start; answer within Teams' 5 s (the inbox takes over when that fails)."""
    raw = req.get_body()
    delivery = None  # read only after the HMAC: nothing unauthenticated is parsed
    try:
        services = get_services()
        event = parse_teams(req.headers, raw, services)
        delivery = _activity_id(raw)
    except Exception as exc:  # translated to 4xx/503; never a stack trace to the caller
        return error_response(exc, delivery)
    try:
        admission = await within(INLINE_BUDGET_SECONDS["teams"], admit(event, client, services))
    except Exception as exc:
        if not goes_to_inbox(exc):
            return error_response(exc, delivery)
        item = InboxItem.of("teams", dict(req.headers), raw, received_at=services.clock(), delivery=delivery,
                            event_id=event.id)
        answer = hand_to_inbox(inbox, item, exc)
        return queued_ack(delivery, event.id) if answer.status_code == 202 else answer
    logger.info("teams activity %s: %s (instance %s)", delivery, admission.decision.verdict.value,
                admission.instance_id)
    return ack_response(admission, delivery, explorer_url(services.settings.explorer_url, admission.decision.chain_id))
