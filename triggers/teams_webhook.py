"""``POST /api/teams/webhook``: a Teams outgoing webhook call in, an acknowledgement within 5 s out.

Anonymous at the Functions level: the ``Authorization: HMAC <base64>`` signature over the raw body is the
authentication, and it fails closed (413 above 256 KB, checked first; 401 for a missing or wrong signature, checked
before any byte is parsed; 503 naming ``TEAMS_OUTGOING_WEBHOOK_TOKEN`` when no token is configured; 400 for a
malformed or too deeply nested activity). The answer is
the synchronous reply Teams shows in the thread (``build_ack_reply``); the real answer is posted later
through Graph by the reply orchestration. This trigger never calls Graph. The decision travels in
``X-Reynolds-*`` response headers (Teams ignores them; tools and operators read them).
"""

from __future__ import annotations

import json
import logging

import azure.durable_functions as df
import azure.functions as func

from shared.chain_view import explorer_url
from shared.platforms.teams.webhook import build_ack_reply, parse_teams_activity, verify_teams_hmac
from shared.services import get_services
from triggers.ingress import Admission, admit, error_response

logger = logging.getLogger(__name__)

bp = df.Blueprint()

ACK_TEXT = {
    "accepted": "On it: Reynolds will answer in this channel shortly.",
    "duplicate": "Reynolds already has this message.",
}
DEFAULT_ACK = "Reynolds heard you; nothing to do for this message."


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


@bp.function_name("teams_webhook")
@bp.route(route="teams/webhook", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def teams_webhook(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Verify, parse, decide and start; answer within Teams' 5 s."""
    raw = req.get_body()
    delivery = None  # read only after the HMAC: nothing unauthenticated is parsed
    try:
        services = get_services()
        token = services.settings.teams_webhook_token
        verify_teams_hmac(token.get_secret_value() if token else None, raw, req.headers.get("Authorization"))
        event = parse_teams_activity(raw, received_at=services.clock())
        delivery = _activity_id(raw)
        admission = await admit(event, client, services)
    except Exception as exc:  # translated to 4xx/503; never a stack trace to the caller
        return error_response(exc, delivery)
    logger.info("teams activity %s: %s (instance %s)", delivery, admission.decision.verdict.value,
                admission.instance_id)
    return ack_response(admission, delivery, explorer_url(services.settings.explorer_url, admission.decision.chain_id))
