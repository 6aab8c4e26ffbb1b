"""``POST /api/github/webhook``: GitHub deliveries in, a decision and maybe an orchestration out.

Anonymous at the Functions level: the HMAC signature is the authentication, and it fails closed (no
configured secret answers 503, never "accept").
"""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.loop.envelope import EventEnvelope
from shared.platforms.github.events import header, read_delivery, to_envelope, typed_check
from shared.services import get_services
from triggers.github_commands import apply_command
from triggers.ingress import admit, error_response, json_response

logger = logging.getLogger(__name__)

bp = df.Blueprint()


@bp.function_name("github_webhook")
@bp.route(route="github/webhook", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def github_webhook(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Verify, decode, decide and start; answer within GitHub's 10 s."""
    delivery_id = header(dict(req.headers), "X-GitHub-Delivery")
    try:
        services = get_services()
        secret = services.settings.require("github_webhook_secret")
        delivery = read_delivery(secret, req.get_body(), dict(req.headers))
        if delivery.event == "ping":
            return json_response(200, {"delivery": delivery.delivery_id, "verdict": "ignored", "reason": "pong"})
        typed_check(delivery.event, delivery.payload)
        event: EventEnvelope = to_envelope(delivery, received_at=services.clock(),
                                           bot_login=services.settings.bot_login,
                                           bot_app_id=services.settings.bot_app_id)
        async def command_reply() -> dict[str, Any]:
            reply = await apply_command(event, client, services)
            return reply.as_input() if reply else {}

        admission = await admit(event, client, services, prepare=command_reply)
    except Exception as exc:  # translated to 4xx/503; never a stack trace to the caller
        return error_response(exc, delivery_id)
    accepted = admission.decision.verdict.value == "accepted" and admission.instance_id is not None
    return json_response(202 if accepted else 200, admission.body(delivery.delivery_id))
